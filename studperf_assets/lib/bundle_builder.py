"""Write and re-read model bundles (format owned by ``lambda_service.bundle``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.pipeline import Pipeline

from lambda_service.bundle import (
    MANIFEST_FILE,
    ONNX_FILE,
    REFERENCE_FILE,
    SKOPS_FILE,
    Manifest,
    sha256_file,
)
from lambda_service.predictor import Predictor
from lambda_service.schema import FEATURES, GRADE_LETTERS
from lambda_service.smoke import InvalidModelOutput, output_problems
from studperf_assets.lib.models import UntrustedModelFile, load_skops
from studperf_assets.lib.onnx_export import export_onnx
from studperf_assets.lib.reference import reference_frame, to_parquet
from studperf_assets.lib.trained import MODEL_NAME


def new_version(now: datetime, model_sha256: str) -> str:
    """Sortable and unique: UTC time of creation plus the model file's hash prefix."""
    return f"v{now.strftime('%Y%m%dT%H%M%SZ')}-{model_sha256[:8]}"


def write_bundle(
    pipeline: Pipeline,
    folder: Path,
    *,
    model_family: str,
    params: dict[str, Any],
    metrics: dict[str, dict[str, float]],
    training_data_sha256: str,
    mlflow_run_id: str | None,
    held_out: pd.DataFrame | None = None,
    now: datetime | None = None,
) -> Manifest:
    """Save the skops pipeline and its ONNX form, then a manifest hashing both; with
    ``held_out`` rows (raw columns), also the reference monitoring compares windows with,
    scored by the ONNX form just written (``lib.reference``)."""
    folder.mkdir(parents=True, exist_ok=True)
    sio.dump(pipeline, folder / SKOPS_FILE)
    (folder / ONNX_FILE).write_bytes(export_onnx(pipeline))
    files = {name: sha256_file(folder / name) for name in (SKOPS_FILE, ONNX_FILE)}
    created = now or datetime.now(UTC)
    manifest = _manifest(created, files, model_family, params, metrics)
    manifest.training_data_sha256, manifest.mlflow_run_id = training_data_sha256, mlflow_run_id
    if held_out is not None:
        reference = reference_frame(held_out, Predictor(folder, manifest))
        (folder / REFERENCE_FILE).write_bytes(to_parquet(reference))
        manifest.files[REFERENCE_FILE] = sha256_file(folder / REFERENCE_FILE)
    (folder / MANIFEST_FILE).write_text(manifest.to_json())
    return manifest


def _manifest(
    created: datetime,
    files: dict[str, str],
    model_family: str,
    params: dict[str, Any],
    metrics: dict[str, dict[str, float]],
) -> Manifest:
    return Manifest(
        version=new_version(created, files[SKOPS_FILE]),
        created_at=created.isoformat(timespec="seconds"),
        model_name=MODEL_NAME,
        model_family=model_family,
        features=[f.to_json() for f in FEATURES],
        class_labels=list(GRADE_LETTERS),
        metrics=metrics,
        training_data_sha256="",
        files=files,
        params=params,
    )


def load_pipeline(path: Path) -> Pipeline:
    """Load a bundle's skops pipeline (safe loading: see ``load_skops``)."""
    pipeline = load_skops(path)
    if not isinstance(pipeline, Pipeline):
        raise UntrustedModelFile(f"{path}: holds {type(pipeline).__name__}, not a Pipeline")
    return pipeline


def serving_mismatches(folder: Path, X: np.ndarray) -> tuple[int, float]:
    """Rows where the ONNX form's label differs from the skops pipeline's, and the
    largest probability difference; (0, ~1e-7) is a faithful export. Loading the serving
    form runs the smoke test; its output on every row of ``X`` is then held to the same
    rules (InvalidModelOutput, naming the problem)."""
    pipeline = load_pipeline(folder / SKOPS_FILE)
    predictor = Predictor.from_folder(folder)
    labels, probabilities = predictor.predict_matrix(X)
    problems = output_problems(labels, probabilities, len(X), len(predictor.labels))
    if problems:
        raise InvalidModelOutput(f"{folder}: on {len(X)} data rows: {'; '.join(problems)}")
    expected = pipeline.predict(X)
    drift = float(np.abs(probabilities - pipeline.predict_proba(X)).max()) if len(X) else 0.0
    return int((labels != expected).sum()), drift
