"""The bound on the rows one training run fits: the CSV's rows plus the labelled production
rows, cut to ``limit`` when there are more.

Over the limit, the most recent production labels are kept first (they carry the drift
retraining is for), up to ``production_share`` of the limit, or more when the file's rows
cannot fill the rest; the file's rows fill the rest with a seeded sample stratified by
GradeClass (each grade keeps its share, to the row). Below the limit nothing changes.

The sampler is written here rather than taken from ``train_test_split(stratify=...)``:
that refuses a grade with a single row and rounds per call; proportional allocation by
largest remainder gives the exact size, any class counts, in a few lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lambda_service.schema import GRADE_LETTERS
from studperf_assets.lib.data import TARGET

SOURCES = ("file", "production")


@dataclass(frozen=True)
class CappedRows:
    """The rows kept from each source, and what was offered and dropped, per grade."""

    file: pd.DataFrame
    production: pd.DataFrame  # the kept production rows, oldest label first
    offered: dict[str, int]
    dropped: dict[str, dict[str, int]]  # source -> grade letter -> rows dropped
    limit: int

    @property
    def kept(self) -> dict[str, int]:
        return {"file": len(self.file), "production": len(self.production)}

    @property
    def dropped_total(self) -> int:
        return sum(sum(by_grade.values()) for by_grade in self.dropped.values())

    def metadata(self) -> dict[str, Any]:
        """JSON-ready figures for the asset's metadata."""
        return {
            "max_training_rows": self.limit,
            "rows_offered": self.offered,
            "rows_kept": self.kept,
            "rows_dropped": self.dropped,
            "rows_dropped_total": self.dropped_total,
        }

    def summary(self) -> str:
        """One log line: what was kept and dropped from each source."""
        if not self.dropped_total:
            return f"{sum(self.offered.values())} rows, within the cap of {self.limit}"
        parts = [
            f"{source}: kept {self.kept[source]} of {self.offered[source]}, dropped "
            + ", ".join(f"{n} {grade}" for grade, n in self.dropped[source].items() if n)
            for source in SOURCES
            if self.offered[source]
        ]
        return f"capped at {self.limit} rows; " + "; ".join(parts)


def cap_training_rows(
    file_rows: pd.DataFrame,
    production_rows: pd.DataFrame,
    limit: int,
    production_share: float,
    seed: int,
) -> CappedRows:
    """Cut the two sources to ``limit`` rows together (see the module docstring).

    ``production_rows`` must be ordered oldest label first (as ``labels.as_training_rows``
    returns them): the newest are its last rows. Kept file rows stay in file order.
    Raises ValueError for a limit below 1 or a share outside [0, 1].
    """
    if limit < 1 or not 0.0 <= production_share <= 1.0:
        raise ValueError(
            f"need limit >= 1 and 0 <= production_share <= 1, not {limit}, {production_share}"
        )
    offered = {"file": len(file_rows), "production": len(production_rows)}
    if len(file_rows) + len(production_rows) <= limit:
        kept_file, kept_production = file_rows, production_rows
    else:
        quota = max(int(limit * production_share), limit - len(file_rows))
        kept_production = production_rows.iloc[
            len(production_rows) - min(quota, len(production_rows)) :
        ]
        kept_file = stratified_sample(file_rows, limit - len(kept_production), seed)
    return CappedRows(
        file=kept_file,
        production=kept_production,
        offered=offered,
        dropped={
            "file": _grade_counts(file_rows, kept_file),
            "production": _grade_counts(production_rows, kept_production),
        },
        limit=limit,
    )


def stratified_sample(frame: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """``size`` rows of ``frame``, each GradeClass keeping its share (largest remainder),
    drawn without replacement by a generator seeded with ``seed``; rows stay in order."""
    if size >= len(frame):
        return frame
    grades = frame[TARGET].to_numpy()
    classes, counts = np.unique(grades, return_counts=True)
    quotas = counts * size / len(frame)
    allocation = np.floor(quotas).astype(np.int64)
    # the rows rounding left over go to the largest remainders (ties: the lower grade)
    order = np.argsort(-(quotas - allocation), kind="stable")
    allocation[order[: size - int(allocation.sum())]] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(grades == grade), n, replace=False)
        for grade, n in zip(classes, allocation, strict=True)
    ]
    return frame.iloc[np.sort(np.concatenate(chosen))]


def _grade_counts(offered: pd.DataFrame, kept: pd.DataFrame) -> dict[str, int]:
    """Rows dropped per grade letter (every grade listed)."""
    grades = len(GRADE_LETTERS)
    before = np.bincount(offered[TARGET].to_numpy(dtype=np.int64), minlength=grades)
    after = np.bincount(kept[TARGET].to_numpy(dtype=np.int64), minlength=grades)
    return {letter: int(before[i] - after[i]) for i, letter in enumerate(GRADE_LETTERS)}
