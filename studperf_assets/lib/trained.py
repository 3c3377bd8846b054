"""The trained model handed between training steps: a fitted pipeline and its scores.

Kept apart from ``models`` so that naming the type (asset annotations, the IO manager)
does not import scikit-learn when the code location loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The name bundles carry in their manifest and the MLflow registered model's name.
MODEL_NAME = "studperf-grade-class"


@dataclass
class TrainedModel:
    """The chosen pipeline with what it is and how it scored, split by split."""

    pipeline: Any  # a fitted sklearn Pipeline (scaler + model)
    family: str
    params: dict[str, Any]
    metrics: dict[str, dict[str, Any]]

    def info(self) -> dict[str, Any]:
        return {"family": self.family, "params": self.params, "metrics": self.metrics}

    @classmethod
    def from_info(cls, pipeline: Any, info: dict[str, Any]) -> TrainedModel:
        return cls(pipeline, info["family"], info["params"], info["metrics"])
