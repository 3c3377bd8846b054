"""Monitoring: reference data, prediction batches (dynamic partitions), drift reports and
the checks that judge them. Sensors live beside them in ``monitoring_sensors``.

Evidently (seconds to import) and onnxruntime load inside the steps that use them.
"""

import tempfile
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
    DynamicPartitionsDefinition,
    Failure,
    MetadataValue,
    Output,
    asset,
    asset_check,
)
from pydantic import Field

from lambda_service.schema import FEATURE_NAMES, FEATURES
from studperf_assets.lib import data
from studperf_assets.lib.drift_summary import PREDICTION, TARGET, DriftSummary
from studperf_assets.lib.labels import REQUEST_ID
from studperf_assets.resources.ground_truth import GroundTruth
from studperf_assets.resources.metrics_db import MetricsDatabase
from studperf_assets.resources.model_store import ModelStore
from studperf_assets.resources.monitoring import MonitoringSettings, PredictionStream, flatten
from studperf_assets.resources.object_store import ObjectStore
from studperf_assets.resources.settings import TrainingSettings

GROUP = "monitoring"
prediction_batch_partitions = DynamicPartitionsDefinition(name="prediction_batches")


@asset(group_name=GROUP, kinds={"pandas"})
def reference_data(
    context: AssetExecutionContext,
    production_model: dict[str, Any],
    data_splits: dict[str, pd.DataFrame],
    model_store: ModelStore,
    training_settings: TrainingSettings,
) -> Output[pd.DataFrame]:
    """The champion's inputs, predictions and targets on its held-out rows (val + test):
    what production batches are compared with. Rebuilt whenever a bundle is promoted."""
    from lambda_service.predictor import Predictor

    version = str(production_model["version"])
    held_out = pd.concat([data_splits["val"], data_splits["test"]])
    with training_settings.scratch("reference-") as cache:
        predictor = Predictor.from_folder(model_store.fetch(version, cache))
        labels, _ = predictor.predict_matrix(data.feature_matrix(held_out))
    frame = held_out[list(FEATURE_NAMES)].reset_index(drop=True)
    frame[PREDICTION] = labels
    frame[TARGET] = held_out[data.TARGET].to_numpy()
    frame["model_version"] = version
    return Output(
        frame,
        metadata={
            "model_version": version,
            "rows": len(frame),
            "prediction_shares": MetadataValue.json(_shares(frame[PREDICTION])),
        },
    )


def _shares(column: pd.Series) -> dict[str, float]:
    return {
        str(k): round(float(v), 4)
        for k, v in column.value_counts(normalize=True).sort_index().items()
    }


class BatchConfig(Config):
    after: dict[str, str] = Field(
        default={}, description="Per shard: the batch starts after this sequence number."
    )
    until: dict[str, str] = Field(
        default={}, description="Per shard: the batch ends at this sequence number."
    )


@asset(
    group_name=GROUP,
    partitions_def=prediction_batch_partitions,
    kinds={"kinesis", "parquet"},
    check_specs=[
        AssetCheckSpec(
            "batch_labels",
            asset="prediction_batches",
            partitions_def=prediction_batch_partitions,
            description="Ground truth usable: no label files rejected, no conflicting labels.",
        )
    ],
)
def prediction_batches(
    context: AssetExecutionContext,
    config: BatchConfig,
    prediction_stream: PredictionStream,
    object_store: ObjectStore,
    ground_truth: GroundTruth,
) -> Iterator[Output[pd.DataFrame] | AssetCheckResult]:
    """One batch of production predictions (inputs included), archived as Parquet, with the
    ground truth that has arrived joined by ``request_id`` (re-materialize to pick up later
    labels). New label files are ingested here, once; one that cannot be used fails the
    ``batch_labels`` check, naming the file and the problem."""
    key = context.partition_key
    predictions, duplicates = _archived_predictions(key, config, prediction_stream, object_store)
    ground_truth.database.index_predictions(key, predictions[REQUEST_ID])
    intake = ground_truth.ingest_new()
    joined_at = datetime.now(UTC)  # label files ingested after this are news to the batch
    labels = ground_truth.labels_for(key)
    usable = labels[~labels["conflict"]].set_index(REQUEST_ID)[data.TARGET]
    batch = predictions.assign(**{TARGET: predictions[REQUEST_ID].map(usable)})
    conflicting = sorted(labels.loc[labels["conflict"], REQUEST_ID])
    labelled = int(batch[TARGET].notna().sum())
    ground_truth.database.record_label_join(key, joined_at, len(batch), labelled)
    yield Output(
        batch,
        metadata={
            "rows": len(batch),
            "labelled_rows": labelled,
            "duplicates_removed": duplicates,
            "model_versions": MetadataValue.json(sorted(batch["model_version"].unique().tolist())),
            "archive": MetadataValue.path(object_store.uri(_archive_key(key))),
            "label_files_ingested": len(intake.ingested),
            "labels_ingested": intake.new_labels,
        },
    )
    yield AssetCheckResult(
        check_name="batch_labels",
        passed=not intake.rejected and not conflicting,
        metadata={
            "rejected_label_files": MetadataValue.json(intake.rejected),
            "conflicting_labels": len(conflicting),
            "conflicting_request_ids": MetadataValue.json(conflicting[:20]),
            "duplicate_labels_ignored": intake.duplicates,
        },
    )


def _archive_key(partition: str) -> str:
    return f"batches/{partition}/predictions.parquet"


def _archived_predictions(
    key: str, config: BatchConfig, stream: PredictionStream, store: ObjectStore
) -> tuple[pd.DataFrame, int]:
    """The batch's predictions, archived on first read; duplicates (a record delivered
    twice, or archived twice) removed by idempotency key. Returns (rows, removed)."""
    archive = _archive_key(key)
    if store.exists(archive):
        try:
            predictions = store.get_frame(archive)
        except Exception as exc:
            raise Failure(
                f"batch {key}: the archive {store.uri(archive)} is not a readable Parquet "
                f"file ({type(exc).__name__}: {str(exc)[:200]})"
            ) from exc
        missing = {"idempotency_key", "model_version", *FEATURE_NAMES} - set(predictions.columns)
        if missing:
            raise Failure(
                f"batch {key}: the archive {store.uri(archive)} lacks column(s) "
                f"{', '.join(sorted(missing))}"
            )
        fresh = False
    else:
        if not config.until:
            raise Failure(f"batch {key} is not archived and its stream range is not configured")
        records, _ = stream.read(config.after, limit=10**9, until=config.until)
        if not records:
            raise Failure(f"batch {key}: no predictions in {config.after} .. {config.until}")
        predictions, fresh = pd.DataFrame(flatten(records)), True
    if REQUEST_ID not in predictions.columns:  # archived before predictions had request IDs
        predictions[REQUEST_ID] = predictions["idempotency_key"]
    unique = predictions.drop_duplicates("idempotency_key").reset_index(drop=True)
    if fresh:
        store.put_frame(archive, unique)
    return unique, len(predictions) - len(unique)


@asset_check(
    asset=prediction_batches,
    partitions_def=prediction_batch_partitions,
    description="No missing or out-of-range inputs in the batch.",
)
def batch_data_quality(prediction_batches: pd.DataFrame) -> AssetCheckResult:
    problems = {}
    for feature in FEATURES:
        column = pd.to_numeric(prediction_batches[feature.name], errors="coerce")
        bad = int((column.isna() | (column < feature.minimum) | (column > feature.maximum)).sum())
        if bad:
            problems[feature.name] = bad
    return AssetCheckResult(
        passed=not problems,
        metadata={"rows": len(prediction_batches), "bad_values": MetadataValue.json(problems)},
    )


@asset(group_name=GROUP, partitions_def=prediction_batch_partitions, kinds={"evidently", "sql"})
def drift_report(
    context: AssetExecutionContext,
    prediction_batches: pd.DataFrame,
    reference_data: pd.DataFrame,
    object_store: ObjectStore,
    metrics_database: MetricsDatabase,
    monitoring_settings: MonitoringSettings,
) -> Output[dict[str, Any]]:
    """Evidently data, prediction and target drift plus classification quality of one batch.

    The HTML goes to the object store, the key numbers to Dagster metadata (plotted across
    partitions), to the metrics table and to the Evidently workspace (the dashboard)."""
    from studperf_assets.lib import drift as drift_math

    key = context.partition_key
    result = drift_math.drift_report(
        reference_data, prediction_batches, monitoring_settings.max_rows
    )
    summary = result.summary
    report_uri = object_store.put_bytes(
        f"reports/{key}/drift.html", _html(result.drift), content_type="text/html"
    )
    links = {"drift_report": MetadataValue.path(report_uri)}
    if result.quality is not None:
        quality_uri = object_store.put_bytes(
            f"reports/{key}/quality.html", _html(result.quality), content_type="text/html"
        )
        links["quality_report"] = MetadataValue.path(quality_uri)
    model_version = str(prediction_batches["model_version"].mode().iloc[0])
    metrics_database.record_batch(
        key,
        {
            "model_version": model_version,
            "rows": summary.rows,
            "labelled_rows": summary.labelled_rows,
            "drift_share": summary.drift_share,
            "prediction_drift": summary.prediction_drift,
            "target_drift": summary.target_drift,
            "f1_macro": summary.f1_macro,
            "accuracy": summary.accuracy,
            "feature_scores": summary.feature_scores,
            "report_uri": report_uri,
        },
    )
    _add_to_dashboard(monitoring_settings.evidently_workspace, key, result)
    numbers: dict[str, Any] = {
        "drift_share": summary.drift_share,
        "prediction_drift": summary.prediction_drift,
        "rows": summary.rows,
        "labelled_rows": summary.labelled_rows,
        **{f"drift_score/{c}": round(v, 4) for c, v in summary.feature_scores.items()},
    }
    if summary.f1_macro is not None:
        numbers["f1_macro"] = summary.f1_macro
    drifted = ", ".join(summary.drifted_features) or "none"
    context.log.info(
        f"{key}: drift share {summary.drift_share:.2f} ({drifted}), "
        f"prediction drift {summary.prediction_drift:.3f}, f1 {summary.f1_macro}"
    )
    return Output(
        {
            **summary.to_json(),
            "partition": key,
            "report_uri": report_uri,
            "model_version": model_version,
        },
        metadata={**numbers, **links, "model_version": model_version},
    )


def _html(snapshot: Any) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.html"
        snapshot.save_html(str(path))
        return path.read_bytes()


def _add_to_dashboard(workspace_path: str, key: str, result: Any) -> None:
    """One Evidently UI snapshot per report of the batch (``evidently ui --workspace …``)."""
    from studperf_assets.lib.dashboard import add_snapshots

    runs = [(f"{key} drift", result.drift)]
    if result.quality is not None:
        runs.append((f"{key} quality", result.quality))
    add_snapshots(workspace_path, runs)


def _severity(name: str) -> AssetCheckSeverity:
    return AssetCheckSeverity.ERROR if name.upper() == "ERROR" else AssetCheckSeverity.WARN


def _summary(report: dict[str, Any]) -> DriftSummary:
    fields = DriftSummary.__dataclass_fields__
    return DriftSummary(**{k: v for k, v in report.items() if k in fields})


@asset_check(
    asset=drift_report,
    partitions_def=prediction_batch_partitions,
    description="Share of drifted features below the threshold.",
)
def data_drift(
    drift_report: dict[str, Any], monitoring_settings: MonitoringSettings
) -> AssetCheckResult:
    summary = _summary(drift_report)
    return AssetCheckResult(
        passed=summary.drift_share < monitoring_settings.data_drift_share,
        severity=_severity(monitoring_settings.drift_severity),
        metadata={
            "drift_share": summary.drift_share,
            "threshold": monitoring_settings.data_drift_share,
            "drifted_features": MetadataValue.json(summary.drifted_features),
            "feature_scores": MetadataValue.json(
                {k: round(v, 4) for k, v in summary.feature_scores.items()}
            ),
            "report": MetadataValue.path(str(drift_report["report_uri"])),
        },
    )


@asset_check(
    asset=drift_report,
    partitions_def=prediction_batch_partitions,
    description="Prediction distribution close to the reference's.",
)
def prediction_drift(
    drift_report: dict[str, Any], monitoring_settings: MonitoringSettings
) -> AssetCheckResult:
    summary = _summary(drift_report)
    return AssetCheckResult(
        passed=summary.prediction_drift <= monitoring_settings.prediction_drift_score,
        severity=_severity(monitoring_settings.drift_severity),
        metadata={
            "prediction_drift": summary.prediction_drift,
            "threshold": monitoring_settings.prediction_drift_score,
            "report": MetadataValue.path(str(drift_report["report_uri"])),
        },
    )


@asset_check(
    asset=drift_report,
    partitions_def=prediction_batch_partitions,
    description="f1-macro above the floor once enough labels arrived.",
)
def performance(
    drift_report: dict[str, Any], monitoring_settings: MonitoringSettings
) -> AssetCheckResult:
    summary = _summary(drift_report)
    judged = (
        summary.f1_macro is not None
        and summary.labelled_rows >= monitoring_settings.min_labelled_for_f1
    )
    passed = not judged or float(summary.f1_macro or 0.0) >= monitoring_settings.f1_floor
    return AssetCheckResult(
        passed=passed,
        severity=_severity(monitoring_settings.performance_severity),
        metadata={
            "f1_macro": float(summary.f1_macro) if summary.f1_macro is not None else float("nan"),
            "labelled_rows": summary.labelled_rows,
            "floor": monitoring_settings.f1_floor,
            "judged": judged,
            "report": MetadataValue.path(str(drift_report["report_uri"])),
        },
    )


MONITORING_CHECKS = (
    "batch_labels",
    "batch_data_quality",
    "data_drift",
    "prediction_drift",
    "performance",
)
RETRAINING_CHECKS = ("data_drift", "prediction_drift", "performance")
