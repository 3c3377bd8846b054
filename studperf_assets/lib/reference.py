"""The reference a monitored window is compared with, carried by the bundle that served it.

A bundle holds ``reference.parquet`` (hashed in its manifest like its model files): the
champion's inputs, predicted grade, probabilities and true grade on its held-out rows (val
+ test), scored through its serving (ONNX) form when it was built. Monitoring reads the
reference of the model version that made a window's predictions, from the model store, so
a home that never trained (the store already had a production bundle), a reference asset
lost with its IO store, or an aws deployment whose Dagster storage was rebuilt, all still
monitor: the reference travels with the model. A bundle from before references were kept
gets one rebuilt from the bundled dataset's reference split, scored by that bundle (say so
in the report); nothing is ever a permanent failure.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lambda_service.bundle import REFERENCE_FILE, Manifest, verify_bundle
from lambda_service.predictor import Predictor
from lambda_service.schema import FEATURE_NAMES
from studperf_assets.lib import data
from studperf_assets.lib.drift_summary import ACTUAL, PREDICTION

# Rows a reference keeps: drift is judged on a bounded sample, so a capped training run's
# held-out rows (up to 15,000) need not all travel with the model.
MAX_REFERENCE_ROWS = 20_000
REFERENCE_SEED = 0


def probability_columns(labels: list[str] | tuple[str, ...]) -> list[str]:
    return [f"prob_{label}" for label in labels]


def reference_frame(held_out: pd.DataFrame, predictor: Predictor) -> pd.DataFrame:
    """Features, ``prediction``, ``prob_<grade>`` and ``target`` of the held-out rows (raw
    columns, GradeClass included), as the bundle's serving form scores them; at most
    ``MAX_REFERENCE_ROWS`` (a seeded sample)."""
    if len(held_out) > MAX_REFERENCE_ROWS:
        held_out = held_out.sample(MAX_REFERENCE_ROWS, random_state=REFERENCE_SEED)
    labels, probabilities = predictor.predict_matrix(data.feature_matrix(held_out))
    frame = held_out[list(FEATURE_NAMES)].reset_index(drop=True)
    frame[PREDICTION] = labels
    for column, values in zip(
        probability_columns(predictor.labels), probabilities.T.astype("float64"), strict=True
    ):
        frame[column] = values.round(6)
    frame[ACTUAL] = held_out[data.TARGET].to_numpy()
    return frame


def to_parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


@dataclass
class Reference:
    frame: pd.DataFrame
    version: str  # the bundle it belongs to
    source: str  # "bundle", or how it was rebuilt


def bundle_reference(folder: Path, manifest: Manifest | None = None) -> Reference:
    """A verified bundle folder's reference: its own file, or rebuilt for a bundle from
    before references were kept."""
    manifest = manifest or verify_bundle(folder)
    if REFERENCE_FILE in manifest.files:
        frame = pd.read_parquet(folder / REFERENCE_FILE)
        return Reference(frame, manifest.version, "bundle")
    raw = data.parse_raw_csv(data.bundled_dataset_path().read_bytes(), "the bundled dataset")
    splits = data.reference_split(data.select_features(raw))
    held_out = pd.concat([splits["val"], splits["test"]])
    rebuilt = reference_frame(held_out, Predictor(folder, manifest))
    return Reference(rebuilt, manifest.version, "rebuilt from the bundled dataset's split")
