"""Drift math: an Evidently 0.7 report of a production batch against the reference data.

Scores are distances that do not grow with sample size: normed Wasserstein for the two
continuous features, Jensen-Shannon for the ordinal and binary ones (and for predictions
and targets). A column drifts when its score exceeds its threshold. Batches larger than
``max_rows`` are sampled (uniformly, seeded); ``benchmarks/monitoring.py`` measures the
error that adds to the scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, MulticlassClassification, Report
from evidently.core.report import Snapshot
from evidently.metrics import DriftedColumnsCount, ValueDrift
from evidently.presets import ClassificationPreset

from lambda_service.schema import FEATURE_NAMES
from studperf_assets.lib.drift_summary import PREDICTION, TARGET, DriftSummary
from studperf_assets.lib.models import classification_metrics

NUMERICAL = ("StudyTimeWeekly", "Absences")
CATEGORICAL = tuple(c for c in FEATURE_NAMES if c not in NUMERICAL)
NUM_METHOD, NUM_THRESHOLD = "wasserstein", 0.2  # normed; batch-to-batch noise reaches ~0.16
CAT_METHOD, CAT_THRESHOLD = "jensenshannon", 0.15
DEFAULT_MAX_ROWS = 100_000


def _definition(columns: list[str], labelled: bool) -> DataDefinition:
    return DataDefinition(
        numerical_columns=[c for c in columns if c in NUMERICAL],
        categorical_columns=[c for c in columns if c not in NUMERICAL],
        classification=(
            [MulticlassClassification(target=TARGET, prediction_labels=PREDICTION)]
            if labelled
            else None
        ),
    )


def _method(column: str) -> tuple[str, float]:
    return (NUM_METHOD, NUM_THRESHOLD) if column in NUMERICAL else (CAT_METHOD, CAT_THRESHOLD)


def sample_rows(frame: pd.DataFrame, max_rows: int, seed: int = 0) -> pd.DataFrame:
    return frame if len(frame) <= max_rows else frame.sample(max_rows, random_state=seed)


def _run(
    metrics: list[Any], current: pd.DataFrame, reference: pd.DataFrame, labelled: bool
) -> Snapshot:
    columns = list(current.columns)
    definition = _definition(columns, labelled)
    return Report(metrics).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )


@dataclass
class DriftResult:
    summary: DriftSummary
    drift: Snapshot
    quality: Snapshot | None  # only once labels exist


def drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, max_rows: int = DEFAULT_MAX_ROWS
) -> DriftResult:
    """Data and prediction drift over the whole batch; target drift and classification
    quality over its labelled rows (``target`` not null), if any."""
    compared = sample_rows(current, max_rows)
    columns = [*FEATURE_NAMES, PREDICTION]
    drift_view = compared[columns].astype({PREDICTION: np.int64})
    drift = _run(
        [
            DriftedColumnsCount(
                columns=list(FEATURE_NAMES),
                num_method=NUM_METHOD,
                num_threshold=NUM_THRESHOLD,
                cat_method=CAT_METHOD,
                cat_threshold=CAT_THRESHOLD,
            ),
            *(ValueDrift(column=c, method=_method(c)[0], threshold=_method(c)[1]) for c in columns),
        ],
        drift_view,
        reference.astype({PREDICTION: np.int64}),
        labelled=False,
    )
    scores = _value_drift_scores(drift)
    drifted = [c for c in FEATURE_NAMES if scores[c] > _method(c)[1]]
    summary = DriftSummary(
        rows=len(current),
        rows_compared=len(compared),
        drift_share=len(drifted) / len(FEATURE_NAMES),
        drifted_features=drifted,
        feature_scores={c: scores[c] for c in FEATURE_NAMES},
        prediction_drift=scores[PREDICTION],
    )
    labelled = compared[compared[TARGET].notna()] if TARGET in compared else compared.iloc[:0]
    quality = None
    if len(labelled):
        view = labelled[[PREDICTION, TARGET]].astype(np.int64)
        quality = _run(
            [
                ValueDrift(column=TARGET, method=CAT_METHOD, threshold=CAT_THRESHOLD),
                ClassificationPreset(),
            ],
            view,
            reference.astype({PREDICTION: np.int64, TARGET: np.int64}),
            labelled=True,
        )
        metrics = classification_metrics(view[TARGET].to_numpy(), view[PREDICTION].to_numpy())
        summary.labelled_rows = len(view)
        summary.target_drift = _value_drift_scores(quality)[TARGET]
        summary.f1_macro = metrics["f1_macro"]
        summary.accuracy = metrics["accuracy"]
        summary.per_class_f1 = {k: v["f1"] for k, v in metrics["per_class"].items()}
    return DriftResult(summary, drift, quality)


def _value_drift_scores(snapshot: Snapshot) -> dict[str, float]:
    scores = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type") == "evidently:metric_v2:ValueDrift":
            scores[config["column"]] = float(metric["value"])
    return scores
