"""Drift math: an Evidently 0.7 report of a production batch against the reference data.

Scores are distances that do not grow with sample size: normed Wasserstein for the two
continuous features, Jensen-Shannon for the ordinal and binary ones (and for predictions
and targets). Evidently decides, once, whether a column drifted: each column's
``ValueDrift`` runs with its threshold and its test's verdict is read back through
Evidently's results API (``metric_results``, ``tests_results``), so the HTML report and
the Dagster checks can never disagree at the threshold. The tests compare a window's
seeded sample (``lib.window_contents``); ``benchmarks/monitoring.py`` measures the error
that adds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, MulticlassClassification, Report
from evidently.core.report import Snapshot
from evidently.metrics import DriftedColumnsCount, ValueDrift
from evidently.presets import ClassificationPreset
from evidently.tests import lt
from sklearn.exceptions import UndefinedMetricWarning

from lambda_service.schema import FEATURE_NAMES, GRADE_LETTERS
from studperf_assets.lib.drift_summary import (
    ACTUAL,
    DEFAULT_SAMPLE_ROWS,
    PREDICTION,
    DriftSummary,
)
from studperf_assets.lib.models import batch_quality
from studperf_assets.lib.window_contents import WindowContents
from studperf_assets.lib.windows import psi, seeded_sample

NUMERICAL = ("StudyTimeWeekly", "Absences")
NUM_METHOD, CAT_METHOD = "wasserstein", "jensenshannon"
FAILED = "FAIL"  # a test's status (a str enum, public only through the legacy package)


@dataclass(frozen=True)
class Thresholds:
    """Scores above which Evidently calls a column drifted (set from measured
    batch-to-batch noise: up to 0.16 for the continuous features; see
    docs/monitoring.md#checks-and-thresholds)."""

    numerical: float = 0.2
    categorical: float = 0.15
    prediction: float = 0.15
    # The share of drifted features at which the data_drift check fails: Evidently's own
    # "share of drifted columns" test is given the same bound (its default is 0.5), so the
    # report and the check never disagree on a window.
    share: float = 0.2

    def of(self, column: str) -> tuple[str, float]:
        if column == PREDICTION:
            return CAT_METHOD, self.prediction
        if column in NUMERICAL:
            return NUM_METHOD, self.numerical
        return CAT_METHOD, self.categorical


GRADE_NAMES = dict(enumerate(GRADE_LETTERS))  # how Evidently's pages name the classes
TRUE_GRADE = "true_grade"  # the labelled rows' grade as a letter: the target drift's column


def _definition(columns: list[str], labelled: bool) -> DataDefinition:
    return DataDefinition(
        numerical_columns=[c for c in columns if c in NUMERICAL],
        categorical_columns=[c for c in columns if c not in NUMERICAL],
        classification=(
            [
                MulticlassClassification(
                    target=ACTUAL, prediction_labels=PREDICTION, labels=GRADE_NAMES
                )
            ]
            if labelled
            else None
        ),
    )


@dataclass(frozen=True)
class RunInfo:
    """What a snapshot is tagged with, so the Evidently UI can filter and place it: the
    window (its start is the snapshot's time on the dashboard's x-axis), the model version
    that served it and the Dagster run that monitored it."""

    window: str = ""
    start: datetime | None = None
    model_version: str = ""
    run_id: str = ""

    def tags(self) -> list[str]:
        named = {"window": self.window, "model": self.model_version, "run": self.run_id}
        return [f"{k}:{v}" for k, v in named.items() if v]

    def metadata(self) -> dict[str, str]:
        named = {"window": self.window, "model_version": self.model_version}
        return {k: v for k, v in {**named, "dagster_run": self.run_id}.items() if v}


def _run(
    metrics: list[Any],
    current: pd.DataFrame,
    reference: pd.DataFrame,
    labelled: bool,
    info: RunInfo = RunInfo(),
) -> Snapshot:
    columns = list(current.columns)
    definition = _definition(columns, labelled)
    return Report(metrics, include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
        timestamp=info.start,
        tags=info.tags(),
        metadata=info.metadata(),
    )


@dataclass(frozen=True)
class ColumnDrift:
    score: float
    threshold: float
    drifted: bool  # Evidently's verdict


def column_drifts(snapshot: Snapshot, metrics: dict[str, ValueDrift]) -> dict[str, ColumnDrift]:
    """Each column's score and Evidently's own drift verdict, read from its results."""
    failed = {
        test.metric_config.metric_id for test in snapshot.tests_results if test.status == FAILED
    }
    return {
        column: ColumnDrift(
            score=float(snapshot.metric_results[metric.metric_id].value),
            threshold=float(metric.threshold or 0.0),
            drifted=metric.metric_id in failed,
        )
        for column, metric in metrics.items()
    }


def evidently_quality_gap(current: set[int], reference: set[int]) -> str:
    """Why Evidently 0.7's classification metrics cannot judge a batch, or "" if they can.

    Measured (``test_evidently_still_fails_where_we_step_around_it`` pins it): they raise a
    KeyError when the batch's labelled rows hold exactly two grades and one of them is not
    B (they take a two-grade batch for a binary task with positive label 1), and when the
    batch holds a grade its reference lacks. Our own figures (``models.batch_quality``) are
    computed over A-F in every case; only Evidently's page is left out."""
    letters = ", ".join(GRADE_LETTERS[g] for g in sorted(current))
    if current - reference:
        missing = ", ".join(GRADE_LETTERS[g] for g in sorted(current - reference))
        return f"the batch holds grade(s) {missing}, which its reference lacks"
    if len(current) == 2:
        return f"the labelled rows hold two grades only ({letters})"
    return ""


def _quality_report(
    view: pd.DataFrame,
    reference: pd.DataFrame,
    thresholds: Thresholds,
    summary: DriftSummary,
    info: RunInfo = RunInfo(),
) -> tuple[Snapshot, float]:
    """Evidently's target drift and, where its metrics can judge the batch, its
    classification quality; returns the snapshot and the target's drift score."""
    target = ValueDrift(column=TRUE_GRADE, method=CAT_METHOD, threshold=thresholds.prediction)
    references = reference.astype({PREDICTION: np.int64, ACTUAL: np.int64})
    grades = set(view[ACTUAL]) | set(view[PREDICTION])
    # the true grade's drift on a lettered copy: the classification keeps the codes (its
    # labels name them A-F), the drift page shows letters, the distance is the same
    view = view.assign(**{TRUE_GRADE: view[ACTUAL].astype(np.int64).map(GRADE_NAMES)})
    references = references.assign(**{TRUE_GRADE: references[ACTUAL].map(GRADE_NAMES)})
    gap = evidently_quality_gap(grades, set(references[ACTUAL]) | set(references[PREDICTION]))
    summary.quality_report = f"target drift only: {gap}" if gap else "complete"
    metrics: list[Any] = [target] if gap else [target, ClassificationPreset()]
    with warnings.catch_warnings():
        # A batch in which no student is predicted some grade is normal; Evidently's
        # per-class precision for it is 0, as batch_quality's is (zero_division=0),
        # and the warning would only fill every monitoring run's log.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        # likewise a batch whose labelled rows hold one grade (sklearn, inside Evidently)
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        quality = _run(metrics, view, references, labelled=not gap, info=info)
    return quality, column_drifts(quality, {TRUE_GRADE: target})[TRUE_GRADE].score


def _lettered(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its predicted grades as letters, as Evidently's drift page shows them
    (the distance between two grade distributions does not depend on their names)."""
    codes = frame[PREDICTION].astype(np.int64)
    return frame.assign(**{PREDICTION: codes.map(GRADE_NAMES)})


@dataclass
class DriftResult:
    summary: DriftSummary
    drift: Snapshot
    quality: Snapshot | None  # only once labels exist


def drift_report(
    reference: pd.DataFrame,
    current: WindowContents | pd.DataFrame,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    thresholds: Thresholds = Thresholds(),
    info: RunInfo = RunInfo(),
) -> DriftResult:
    """Data and prediction drift (distances, Evidently's verdicts, and PSI) on the window's
    bounded seeded sample (``rows_compared`` says how many rows); f1-macro, accuracy and
    per-class F1 over every labelled row (from the window's confusion matrix); target drift
    and Evidently's classification page over the labelled rows, drawn uniformly (seeded)
    from every labelled row up to the sample's size: all of them when they are fewer. (Not
    the sample's own labelled rows: with sparse labels those are a few dozen.)

    ``current``: a window's ``WindowContents``, or a frame of its rows (``target`` NaN where
    unlabelled), counted and sampled here to ``sample_rows`` (seed 0)."""
    window = (
        current
        if isinstance(current, WindowContents)
        else WindowContents.of(current, sample_rows, seed=0)
    )
    compared = window.sample
    columns = [*FEATURE_NAMES, PREDICTION]
    metrics = {
        c: ValueDrift(column=c, method=thresholds.of(c)[0], threshold=thresholds.of(c)[1])
        for c in columns
    }
    share = DriftedColumnsCount(  # the same methods and thresholds: the dashboard plots it
        columns=list(FEATURE_NAMES),
        num_method=NUM_METHOD,
        num_threshold=thresholds.numerical,
        cat_method=CAT_METHOD,
        cat_threshold=thresholds.categorical,
        share_tests=[lt(thresholds.share)],  # the data_drift check's bound, not Evidently's 0.5
        drift_share=thresholds.share,  # its own "dataset drift" bound: the same number
    )
    drift = _run(
        [*metrics.values(), share],
        _lettered(compared[columns]),
        _lettered(reference),
        labelled=False,
        info=info,
    )
    verdicts = column_drifts(drift, metrics)
    drifted = [c for c in FEATURE_NAMES if verdicts[c].drifted]
    counted = drift.metric_results[share.metric_id]
    if int(counted.count.value) != len(drifted):  # one decision, read two ways
        raise RuntimeError(
            f"Evidently counted {counted.count.value} drifted columns, not {drifted}"
        )
    summary = DriftSummary(
        rows=window.rows,
        rows_compared=len(compared),
        drift_share=float(counted.share.value),
        drifted_features=drifted,
        feature_scores={c: verdicts[c].score for c in FEATURE_NAMES},
        feature_thresholds={c: verdicts[c].threshold for c in FEATURE_NAMES},
        prediction_drift=verdicts[PREDICTION].score,
        prediction_drifted=verdicts[PREDICTION].drifted,
    )
    summary.prediction_counts = dict(window.prediction_counts)
    summary.psi = {
        c: round(psi(reference[c], compared[c], categorical=c not in NUMERICAL), 4)
        for c in [*FEATURE_NAMES, PREDICTION]
    }
    # quality over every labelled row; target drift and Evidently's page over a bounded,
    # seeded draw of every labelled row
    quality = None
    if window.labelled_rows:
        true, predicted = window.labelled_pairs()
        scores = batch_quality(true, predicted)
        pairs = pd.DataFrame({PREDICTION: predicted, ACTUAL: true})
        view = seeded_sample(pairs, len(compared), seed=0)
        quality, target_drift = _quality_report(view, reference, thresholds, summary, info)
        summary.labelled_rows = window.labelled_rows
        summary.target_drift = target_drift
        summary.f1_macro = scores["f1_macro"]
        summary.accuracy = scores["accuracy"]
        summary.per_class_f1 = {k: v["f1"] for k, v in scores["per_class"].items()}
        summary.confusion = [[int(n) for n in row] for row in scores["confusion_matrix"]]
    return DriftResult(summary, drift, quality)
