"""What monitoring keeps of one window: counts over every row and a bounded, seeded sample.

A window at 1,000 predictions a second holds 60,000 rows a minute. Keeping them all as the
window's asset value made each window's stored bytes grow with traffic (about 55 bytes a
prediction). What the reports need of every row is small and fixed in size: the row count,
predictions per grade, the confusion matrix of the labelled rows (f1-macro, accuracy and
per-class F1 follow from it exactly) and out-of-range inputs per feature. The drift tests
and Evidently's pages need rows, and read a seeded sample of at most ``sample_rows``
(``MonitoringSettings.drift_sample_rows``): the same window gives the same sample.

Pure logic: pandas and numpy only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lambda_service.schema import FEATURE_NAMES, FEATURES, GRADE_LETTERS
from studperf_assets.lib.drift_summary import ACTUAL, PREDICTION
from studperf_assets.lib.windows import seeded_sample

SAMPLE_COLUMNS = (*FEATURE_NAMES, PREDICTION, ACTUAL, "model_version")
GRADES = len(GRADE_LETTERS)
UNKNOWN_VERSION = "unknown"


@dataclass
class WindowContents:
    """One window as monitoring keeps it.

    ``sample``: at most ``sample_rows`` rows (features, ``prediction``, ``target`` (NaN where
    no label arrived) and ``model_version``), drawn uniformly without replacement with the
    window's seed. Everything else is over every row of the window."""

    sample: pd.DataFrame
    rows: int
    labelled_rows: int
    model_version: str  # the version that served most of the window's rows
    model_versions: list[str]
    prediction_counts: dict[str, int]  # grade letter -> predictions, every grade named
    # rows: true grade, columns: predicted (A-F); None when no row is labelled
    confusion: list[list[int]] | None
    bad_values: dict[str, int] = field(default_factory=dict)  # feature -> rows out of range

    @classmethod
    def of(cls, window: pd.DataFrame, sample_rows: int, seed: int) -> WindowContents:
        """Count ``window`` (one row per prediction, ``target`` NaN where unlabelled) and
        sample it. Raises ValueError for an empty window or ``sample_rows`` < 1."""
        if window.empty:
            raise ValueError("a window without rows has nothing to monitor")
        frame = window if ACTUAL in window else window.assign(**{ACTUAL: np.nan})
        labelled = frame.loc[frame[ACTUAL].notna(), [ACTUAL, PREDICTION]].astype(np.int64)
        confusion = None
        if len(labelled):
            matrix = np.zeros((GRADES, GRADES), dtype=np.int64)
            np.add.at(matrix, (labelled[ACTUAL].to_numpy(), labelled[PREDICTION].to_numpy()), 1)
            confusion = matrix.tolist()
        if "model_version" not in frame:  # a frame built by hand (tests, benchmarks)
            frame = frame.assign(model_version=UNKNOWN_VERSION)
        versions = frame["model_version"].astype(str)
        sample = seeded_sample(frame, sample_rows, seed)
        return cls(
            sample=sample.loc[:, list(SAMPLE_COLUMNS)].reset_index(drop=True),
            rows=len(frame),
            labelled_rows=len(labelled),
            model_version=str(versions.mode().iloc[0]),
            model_versions=sorted(versions.unique().tolist()),
            prediction_counts=prediction_counts(frame[PREDICTION]),
            confusion=confusion,
            bad_values=out_of_range(frame),
        )

    def labelled_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(true grades, predicted grades) of every labelled row, rebuilt from the confusion
        matrix: every metric of ``models.batch_quality`` depends on the pairs' counts only."""
        if self.confusion is None:
            return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
        matrix = np.asarray(self.confusion, dtype=np.int64)
        true, predicted = np.indices(matrix.shape)
        counts = matrix.ravel()
        return np.repeat(true.ravel(), counts), np.repeat(predicted.ravel(), counts)

    # ---- as the IO manager stores it: frames only (Parquet, never pickles) ------------
    def to_frames(self) -> dict[str, pd.DataFrame]:
        facts = {
            "rows": self.rows,
            "labelled_rows": self.labelled_rows,
            "model_version": self.model_version,
            "model_versions": self.model_versions,
            "prediction_counts": self.prediction_counts,
            "confusion": self.confusion,
            "bad_values": self.bad_values,
        }
        return {"sample": self.sample, "facts": pd.DataFrame({"json": [json.dumps(facts)]})}

    @classmethod
    def from_frames(cls, frames: dict[str, pd.DataFrame]) -> WindowContents:
        facts: dict[str, Any] = json.loads(frames["facts"]["json"].iloc[0])
        return cls(sample=frames["sample"], **facts)


def prediction_counts(predictions: pd.Series) -> dict[str, int]:
    """Predictions per grade letter, every grade named (0 when absent)."""
    counts = pd.Series(predictions).dropna().astype(np.int64).value_counts()
    return {letter: int(counts.get(code, 0)) for code, letter in enumerate(GRADE_LETTERS)}


def out_of_range(frame: pd.DataFrame) -> dict[str, int]:
    """Feature -> rows whose value is missing, not a number or outside the schema's range
    (features with none are left out)."""
    problems = {}
    for feature in FEATURES:
        column = pd.to_numeric(frame[feature.name], errors="coerce")
        bad = int((column.isna() | (column < feature.minimum) | (column > feature.maximum)).sum())
        if bad:
            problems[feature.name] = bad
    return problems
