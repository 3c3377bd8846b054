"""Monitoring: reference data and prediction batches (dynamic partitions), with the checks
that guard them. The drift report of a batch is ``reports``; sensors are beside them in
``studperf_assets.sensors``. onnxruntime loads inside the step that uses it.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
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
    asset,
    asset_check,
)
from pydantic import Field

from lambda_service.schema import FEATURE_NAMES, FEATURES
from studperf_assets.constants import MONITORING_GROUP
from studperf_assets.lib import data
from studperf_assets.lib.drift_summary import ACTUAL, PREDICTION
from studperf_assets.lib.labels import REQUEST_ID
from studperf_assets.lib.prediction_records import unreadable, with_text_identifiers
from studperf_assets.partitions import prediction_batch_partitions
from studperf_assets.resources.ground_truth import GroundTruth, LabelIntake
from studperf_assets.resources.metrics_db import MonitoringDatabaseError
from studperf_assets.resources.model_store import ModelStore
from studperf_assets.resources.monitoring import PredictionStream, flatten
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
            "batch_records",
            asset="prediction_batches",
            partitions_def=prediction_batch_partitions,
            description="Every record in the batch's stream range is a prediction.",
        ),
        AssetCheckSpec(
            "batch_labels",
            asset="prediction_batches",
            partitions_def=prediction_batch_partitions,
            description="Ground truth usable: no label files rejected, no conflicting labels.",
        ),
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
    archived = _archived_predictions(key, config, prediction_stream, object_store)
    predictions = archived.predictions
    try:
        intake, labels = _join_labels(key, predictions, ground_truth)
        unavailable = ""
    except MonitoringDatabaseError as error:  # drift can still be judged without labels
        context.log.warning(f"{error}; the batch goes on without its labels")
        intake, labels, unavailable = LabelIntake(), _no_labels(), str(error)
    usable = labels[~labels["conflict"]].set_index(REQUEST_ID)[data.TARGET]
    batch = predictions.assign(**{ACTUAL: predictions[REQUEST_ID].map(usable)})
    conflicting = sorted(labels.loc[labels["conflict"], REQUEST_ID])
    labelled = int(batch[ACTUAL].notna().sum())
    yield Output(
        batch,
        metadata={
            "rows": len(batch),
            "labelled_rows": labelled,
            "duplicates_removed": archived.duplicates,
            "unreadable_records": len(archived.unreadable),
            "model_versions": MetadataValue.json(sorted(batch["model_version"].unique().tolist())),
            "archive": MetadataValue.path(object_store.uri(_archive_key(key))),
            "label_files_ingested": len(intake.ingested),
            "labels_ingested": intake.new_labels,
        },
    )
    yield AssetCheckResult(
        check_name="batch_records",
        severity=AssetCheckSeverity.WARN,
        passed=not archived.unreadable,
        metadata={
            "unreadable_records": len(archived.unreadable),
            "first_unreadable": MetadataValue.json(archived.unreadable[:20]),
            "rows": len(batch),
            "model_version": str(batch["model_version"].mode().iloc[0]),
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
            "rows": len(batch),
            "model_version": str(batch["model_version"].mode().iloc[0]),
        },
    )


def _join_labels(
    key: str, predictions: pd.DataFrame, ground_truth: GroundTruth
) -> tuple[LabelIntake, pd.DataFrame]:
    """Index the batch's predictions, ingest new label files, read the batch's labels."""
    database = ground_truth.database
    database.index_predictions(key, predictions[REQUEST_ID])
    intake = ground_truth.ingest_new()
    joined_at = datetime.now(UTC)  # label files ingested after this are news to the batch
    labels = ground_truth.labels_for(key)
    labelled = int(predictions[REQUEST_ID].isin(labels.loc[~labels["conflict"], REQUEST_ID]).sum())
    database.record_label_join(key, joined_at, len(predictions), labelled)
    return intake, labels


def _no_labels() -> pd.DataFrame:
    return pd.DataFrame({REQUEST_ID: [], data.TARGET: [], "conflict": []}).astype(
        {REQUEST_ID: str, data.TARGET: "int64", "conflict": bool}
    )


def _archive_key(partition: str) -> str:
    return f"batches/{partition}/predictions.parquet"


def _unreadable_key(partition: str) -> str:
    return f"batches/{partition}/unreadable.json"


@dataclass
class ArchivedBatch:
    predictions: pd.DataFrame
    duplicates: int  # rows removed: the same idempotency key twice
    unreadable: list[dict[str, str]]  # records in the range that were not predictions


def _archived_predictions(
    key: str, config: BatchConfig, stream: PredictionStream, store: ObjectStore
) -> ArchivedBatch:
    """The batch's predictions, archived on first read; duplicates (a record delivered
    twice, or archived twice) removed by idempotency key; records that are not predictions
    listed beside the archive, so that a re-materialization reports them too."""
    archive = _archive_key(key)
    unreadable_key = _unreadable_key(key)
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
        skipped = (
            json.loads(store.get_bytes(unreadable_key)) if store.exists(unreadable_key) else []
        )
        fresh = False
    else:
        if not config.until:
            raise Failure(f"batch {key} is not archived and its stream range is not configured")
        records, _ = stream.read(config.after, limit=10**9, until=config.until)
        if not records:
            raise Failure(f"batch {key}: no predictions in {config.after} .. {config.until}")
        skipped = [entry.as_dict() for entry in unreadable(records)]
        if len(skipped) == len(records):
            first = skipped[0]
            raise Failure(
                f"batch {key}: none of its {len(records)} records is a prediction (first: "
                f"shard {first['shard']}, sequence {first['sequence']}: {first['reason']})"
            )
        predictions, fresh = pd.DataFrame(flatten(records)), True
    if REQUEST_ID not in predictions.columns:  # archived before predictions had request IDs
        predictions[REQUEST_ID] = predictions["idempotency_key"]
    predictions = with_text_identifiers(predictions)  # one type per Parquet column
    unique = predictions.drop_duplicates("idempotency_key").reset_index(drop=True)
    if fresh:
        if skipped:
            store.put_bytes(unreadable_key, json.dumps(skipped).encode(), "application/json")
        store.put_frame(archive, unique)
    return ArchivedBatch(unique, len(predictions) - len(unique), skipped)


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
        metadata={
            "rows": len(prediction_batches),
            "model_version": str(prediction_batches["model_version"].mode().iloc[0]),
            "bad_values": MetadataValue.json(problems),
        },
    )
