"""Monitoring: reference data and prediction windows (dynamic partitions, one per closed time
window of the predictions archive), with the checks that guard them. The drift report of a
window is ``reports``; sensors are beside them in
``studperf_assets.sensors``. onnxruntime loads inside the step that uses it.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    Failure,
    MetadataValue,
    Output,
    RunsFilter,
    asset,
    asset_check,
)
from pydantic import Field

from studperf_assets.constants import (
    FAILED_CHECKS_TAG,
    MONITORING_GROUP,
    MONITORING_JOB,
    PARTITION_TAG,
    VERDICT_TAG,
    WINDOW_END_TAG,
    WINDOW_SMALL_TAG,
)
from studperf_assets.lib import data
from studperf_assets.lib.archive import UnreadableArchiveObject, read_window
from studperf_assets.lib.drift_summary import ACTUAL, PREDICTION
from studperf_assets.lib.labels import REQUEST_ID
from studperf_assets.lib.prediction_records import with_text_identifiers
from studperf_assets.lib.window_contents import WindowContents
from studperf_assets.lib.windows import window_key, window_seed, window_start
from studperf_assets.partitions import monitoring_window_partitions
from studperf_assets.resources.ground_truth import GroundTruth, LabelIntake
from studperf_assets.resources.metrics_db import MonitoringDatabaseError
from studperf_assets.resources.model_store import ModelStore
from studperf_assets.resources.monitoring import MonitoringSettings
from studperf_assets.resources.object_store import ObjectStore
from studperf_assets.resources.training_settings import TrainingSettings

GROUP = MONITORING_GROUP
REFERENCES_KEPT = 4


@asset(group_name=GROUP, kinds={"pandas"})
def reference_data(
    context: AssetExecutionContext,
    production_model: dict[str, Any],
    model_store: ModelStore,
    training_settings: TrainingSettings,
) -> Output[pd.DataFrame]:
    """The champion's inputs, predictions, probabilities and targets on its held-out rows
    (val + test), as its bundle carries them: what production windows are compared with.
    Monitoring reads each window's reference from the bundle that served it (see
    ``lib.reference``); this asset records the champion's in the catalog."""
    version = str(production_model["version"])
    reference = load_reference(model_store, version, training_settings)
    frame = reference.frame.assign(model_version=version)
    return Output(
        frame,
        metadata={
            "model_version": version,
            "rows": len(frame),
            "source": reference.source,
            "prediction_shares": MetadataValue.json(_shares(frame[PREDICTION])),
        },
    )


def load_reference(model_store: ModelStore, version: str, settings: TrainingSettings) -> Any:
    """A bundle's reference, from a verified copy kept under the work folder (the newest
    few versions are kept: a window reads the reference of the version that served it)."""
    from lambda_service.bundle import prune_cache
    from studperf_assets.lib.reference import bundle_reference  # onnxruntime: in the step

    cache = Path(settings.work_dir) / "references"
    folder = model_store.fetch(version, cache)
    kept = sorted(p.name for p in cache.iterdir() if p.is_dir() and not p.name.startswith("."))
    prune_cache(cache, keep={version, *kept[-REFERENCES_KEPT:]})
    return bundle_reference(folder)


def _shares(column: pd.Series) -> dict[str, float]:
    return {
        str(k): round(float(v), 4)
        for k, v in column.value_counts(normalize=True).sort_index().items()
    }


class WindowConfig(Config):
    end: str = Field(
        default="",
        description="The window's end (UTC, written as a window key); empty: the end its "
        "sensor's run recorded (a re-run for late labels).",
    )
    small: bool = Field(
        default=False, description="Closed after the maximum wait with fewer rows than wanted."
    )


@asset(
    group_name=GROUP,
    partitions_def=monitoring_window_partitions,
    kinds={"s3", "pandas"},
    check_specs=[
        AssetCheckSpec(
            "batch_records",
            asset="prediction_windows",
            partitions_def=monitoring_window_partitions,
            description="Every record in the window's archive objects is a prediction.",
        ),
        AssetCheckSpec(
            "batch_labels",
            asset="prediction_windows",
            partitions_def=monitoring_window_partitions,
            description="Ground truth usable: no label files rejected, no conflicting labels.",
        ),
    ],
)
def prediction_windows(
    context: AssetExecutionContext,
    config: WindowConfig,
    object_store: ObjectStore,
    ground_truth: GroundTruth,
    monitoring_settings: MonitoringSettings,
) -> Iterator[Output[dict[str, pd.DataFrame]] | AssetCheckResult]:
    """One monitoring window of production predictions (inputs included): the records of
    the archive objects whose key time is in [start, end) (``lib.archive.read_window``), a
    record delivered twice kept once, with the ground truth that has arrived joined by
    ``request_id`` (re-materialize to pick up later labels). Its value is what monitoring
    keeps of it (``lib.window_contents``): counts, class shares, data quality and the
    confusion matrix over every row, and a seeded sample of ``drift_sample_rows`` rows, so
    the bytes stored per window do not grow with traffic. New label files are ingested
    here, once; one that cannot be used fails the ``batch_labels`` check, naming the file
    and the problem. A record that is not a prediction is named by ``batch_records``; an
    archive object that cannot be read fails the run, naming it."""
    key = context.partition_key
    start, end = window_start(key), _window_end(context, key, config)
    small = config.small if config.end else window_tag(context, key, WINDOW_SMALL_TAG) == "true"
    try:
        window = read_window(object_store.archive(), start, end)
    except UnreadableArchiveObject as error:
        raise Failure(f"window {key}: {error}") from error
    predictions = with_text_identifiers(window.predictions)  # one type per Parquet column
    if predictions.empty:
        first = window.unreadable[0] if window.unreadable else None
        why = (
            f"none of its {len(window.unreadable)} records is a prediction (first: "
            f"{first['object']} line {first['line']}: {first['reason']})"
            if first
            else f"no prediction in the archive objects named in [{key}, {window_key(end)})"
        )
        raise Failure(f"window {key}: {why}")
    try:
        intake, labels = _join_labels(key, predictions, ground_truth)
        unavailable = ""
    except MonitoringDatabaseError as error:  # drift can still be judged without labels
        context.log.warning(f"{error}; the window goes on without its labels")
        intake, labels, unavailable = LabelIntake(), _no_labels(), str(error)
    usable = labels[~labels["conflict"]].set_index(REQUEST_ID)[data.TARGET]
    batch = predictions.assign(**{ACTUAL: predictions[REQUEST_ID].map(usable)})
    conflicting = sorted(labels.loc[labels["conflict"], REQUEST_ID])
    contents = WindowContents.of(batch, monitoring_settings.drift_sample_rows, window_seed(key))
    model_version = contents.model_version
    data_checks = {  # what the three data checks decide (batch_data_quality: its own step)
        "batch_records": not window.unreadable,
        "batch_labels": not intake.rejected and not conflicting and not unavailable,
        "batch_data_quality": not contents.bad_values,
    }
    failed = sorted(name for name, passed in data_checks.items() if not passed)
    if failed:  # the runs list: batch_metrics adds the drift and performance checks' verdicts
        context.instance.add_run_tags(
            context.run_id, {VERDICT_TAG: "failed", FAILED_CHECKS_TAG: " ".join(failed)}
        )
    yield Output(
        contents.to_frames(),
        metadata={
            "rows": contents.rows,
            "labelled_rows": contents.labelled_rows,
            "sample_rows": len(contents.sample),
            "window_start": key,
            "window_end": window_key(end),
            "small": small,
            "duplicates_removed": window.duplicates,
            "unreadable_records": len(window.unreadable),
            "error_records": window.errors,
            "archive_objects": len(window.objects),
            "model_versions": MetadataValue.json(contents.model_versions),
            "label_files_ingested": len(intake.ingested),
            "labels_ingested": intake.new_labels,
        },
    )
    yield AssetCheckResult(
        check_name="batch_records",
        severity=AssetCheckSeverity.WARN,
        passed=not window.unreadable,
        metadata={
            "unreadable_records": len(window.unreadable),
            "first_unreadable": MetadataValue.json(window.unreadable[:20]),
            "error_records": window.errors,
            "rows": contents.rows,
            "model_version": model_version,
        },
    )
    yield AssetCheckResult(
        check_name="batch_labels",
        severity=AssetCheckSeverity.WARN,
        passed=not intake.rejected and not conflicting and not unavailable,
        metadata={
            "rejected_label_files": MetadataValue.json(intake.rejected),
            "conflicting_labels": len(conflicting),
            "conflicting_request_ids": MetadataValue.json(conflicting[:20]),
            "duplicate_labels_ignored": intake.duplicates,
            "labels_unavailable": unavailable or "no",
            "rows": contents.rows,
            "model_version": model_version,
        },
    )


def _window_end(context: AssetExecutionContext, key: str, config: WindowConfig) -> datetime:
    """The window's end: from the run config (the window sensor's run), else from the tags of
    the sensor's run of this window (a re-run for late labels, or from the UI)."""
    if config.end:
        return window_start(config.end)
    end = window_tag(context, key, WINDOW_END_TAG)
    if end:
        return window_start(end)
    raise Failure(
        f"window {key}: its end is neither configured (ops.prediction_windows.config.end) "
        "nor recorded by the window sensor's run"
    )


def window_tag(context: AssetExecutionContext, key: str, tag: str) -> str | None:
    """A tag the window sensor set on its run of window ``key``: from this run, else from
    the newest run of the window that has it (a re-run for late labels has none)."""
    if context.run.tags.get(tag):
        return context.run.tags[tag]
    records = context.instance.get_run_records(
        RunsFilter(tags={PARTITION_TAG: key}, job_name=MONITORING_JOB), limit=20
    )
    for record in records:
        value = record.dagster_run.tags.get(tag)
        if value:
            return value
    return None


def _join_labels(
    key: str, predictions: pd.DataFrame, ground_truth: GroundTruth
) -> tuple[LabelIntake, pd.DataFrame]:
    """Index the window's predictions, ingest new label files, read the window's labels."""
    database = ground_truth.database
    database.index_predictions(key, predictions[REQUEST_ID])
    intake = ground_truth.ingest_new()
    joined_at = datetime.now(UTC)  # label files ingested after this are news to the batch
    labels = ground_truth.labels_of(predictions[REQUEST_ID])
    labelled = int(predictions[REQUEST_ID].isin(labels.loc[~labels["conflict"], REQUEST_ID]).sum())
    database.record_label_join(key, joined_at, len(predictions), labelled)
    return intake, labels


def _no_labels() -> pd.DataFrame:
    return pd.DataFrame({REQUEST_ID: [], data.TARGET: [], "conflict": []}).astype(
        {REQUEST_ID: str, data.TARGET: "int64", "conflict": bool}
    )


@asset_check(
    asset=prediction_windows,
    partitions_def=monitoring_window_partitions,
    description="No missing or out-of-range inputs in the window.",
)
def batch_data_quality(prediction_windows: dict[str, pd.DataFrame]) -> AssetCheckResult:
    window = WindowContents.from_frames(prediction_windows)  # counted over every row
    return AssetCheckResult(
        passed=not window.bad_values,
        metadata={
            "rows": window.rows,
            "model_version": window.model_version,
            "bad_values": MetadataValue.json(window.bad_values),
        },
    )
