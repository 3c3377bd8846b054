"""What a drift report concludes about one batch, as plain data (no Evidently import):
the checks, the metrics table and the alerts read it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Columns of a monitored batch and of the reference data, as Evidently sees them: the grade
# the model predicted, and the true grade once its label arrived. (The raw dataset's own
# column for the true grade is ``data.TARGET``, "GradeClass".)
PREDICTION = "prediction"
ACTUAL = "target"
# Rows of a window the drift tests compare; larger windows are sampled, seeded
# (MonitoringSettings.drift_sample_rows; benchmarks/monitoring.py measures the error).
DEFAULT_SAMPLE_ROWS = 5_000


@dataclass
class DriftSummary:
    rows: int
    rows_compared: int
    drift_share: float
    drifted_features: list[str]
    feature_scores: dict[str, float]
    prediction_drift: float
    feature_thresholds: dict[str, float] = field(default_factory=dict)
    prediction_drifted: bool = False  # Evidently's verdict at the prediction threshold
    target_drift: float | None = None
    labelled_rows: int = 0
    f1_macro: float | None = None
    accuracy: float | None = None
    per_class_f1: dict[str, float | None] = field(default_factory=dict)  # None: grade absent
    psi: dict[str, float] = field(default_factory=dict)  # per feature and the prediction
    quality_report: str = ""  # what Evidently's quality page holds ("complete", or why not)
    # Over every row of the batch: predictions per grade letter, and once labels exist the
    # 5x5 confusion matrix of the labelled rows (rows: true grade, columns: predicted, A-F),
    # which the daily rollup sums to score a whole day (``lib.daily_rollup``).
    prediction_counts: dict[str, int] = field(default_factory=dict)
    confusion: list[list[int]] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
