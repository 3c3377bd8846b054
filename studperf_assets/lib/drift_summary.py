"""What a drift report concludes about one batch, as plain data (no Evidently import):
the checks, the metrics table and the alerts read it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PREDICTION = "prediction"
TARGET = "target"


@dataclass
class DriftSummary:
    rows: int
    rows_compared: int
    drift_share: float
    drifted_features: list[str]
    feature_scores: dict[str, float]
    prediction_drift: float
    target_drift: float | None = None
    labelled_rows: int = 0
    f1_macro: float | None = None
    accuracy: float | None = None
    per_class_f1: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
