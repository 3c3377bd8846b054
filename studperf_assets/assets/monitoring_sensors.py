"""Sensors beside the monitoring assets: new batches, late labels, alerts and retraining."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from studperf_assets.assets.monitoring import (
    MONITORING_CHECKS,
    RETRAINING_CHECKS,
    prediction_batch_partitions,
)
from studperf_assets.lib.labels import LABELS_PREFIX, arrived_labels
from studperf_assets.resources.monitoring import (
    AlertSender,
    MetricsDatabase,
    MonitoringSettings,
    PredictionStream,
)
from studperf_assets.resources.object_store import ObjectStore

MONITORING_JOB = "monitoring_job"
TRAINING_JOB = "training_job"
MAX_BATCHES_PER_TICK = 20
PARTITION_TAG = "dagster/partition"


@sensor(
    job_name=MONITORING_JOB, minimum_interval_seconds=30, default_status=DefaultSensorStatus.STOPPED
)
def prediction_batch_sensor(
    context: SensorEvaluationContext,
    prediction_stream: PredictionStream,
    monitoring_settings: MonitoringSettings,
) -> SensorResult | SkipReason:
    """Every ``batch_size`` new predictions become a partition and a monitoring run.

    The cursor holds each shard's last sequence number; a partition's run is told the exact
    range it covers (the sensor reads to count, the run reads that range again), so batches
    never overlap and none is lost."""
    state: dict[str, Any] = (
        json.loads(context.cursor) if context.cursor else {"positions": {}, "count": 0}
    )
    requests, keys = [], []
    for _ in range(MAX_BATCHES_PER_TICK):
        records, positions = prediction_stream.read(
            state["positions"], limit=monitoring_settings.batch_size
        )
        if len(records) < monitoring_settings.batch_size:
            break
        state["count"] += 1
        key = f"batch-{state['count']:06d}"
        requests.append(
            RunRequest(
                run_key=key,
                partition_key=key,
                run_config={
                    "ops": {
                        "prediction_batches": {
                            "config": {"after": state["positions"], "until": positions}
                        }
                    }
                },
            )
        )
        keys.append(key)
        state["positions"] = positions
    if not requests:
        return SkipReason(f"fewer than {monitoring_settings.batch_size} new predictions")
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[prediction_batch_partitions.build_add_request(keys)],
        cursor=json.dumps(state),
    )


@sensor(
    job_name=MONITORING_JOB, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED
)
def late_labels_sensor(
    context: SensorEvaluationContext, object_store: ObjectStore, metrics_database: MetricsDatabase
) -> SensorResult | SkipReason:
    """When new labels arrive, re-run the batches that still miss some, so their quality
    (and the performance check) catches up."""
    keys = [k for k in object_store.list_keys(LABELS_PREFIX) if k.endswith(".parquet")]
    newest = keys[-1] if keys else ""
    if newest <= (context.cursor or ""):
        return SkipReason("no new labels")
    arrived = set(arrived_labels(object_store)["StudentID"].astype(int))
    requests = []
    for batch in metrics_database.batches():
        if batch["labelled_rows"] < batch["rows"]:
            requests.append(
                RunRequest(
                    run_key=f"{batch['partition']}@{newest}", partition_key=batch["partition"]
                )
            )
    context.log.info(f"{len(arrived)} labels have arrived; re-running {len(requests)} batches")
    return SensorResult(run_requests=requests, cursor=newest)


def failed_checks(
    context: SensorEvaluationContext, after: float
) -> Iterator[tuple[float, str, str, dict[str, Any]]]:
    """(run update time, partition, check name, metadata) of failed monitoring checks in
    monitoring runs finished after ``after``, oldest first."""
    records = context.instance.get_run_records(
        filters=RunsFilter(
            job_name=MONITORING_JOB,
            statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE],
            updated_after=datetime.fromtimestamp(after, UTC),
        ),
        order_by="update_timestamp",
        ascending=True,
        limit=200,
    )
    for record in records:
        updated = record.update_timestamp.timestamp()
        partition = record.dagster_run.tags.get(PARTITION_TAG, "")
        for entry in context.instance.all_logs(
            record.dagster_run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
        ):
            evaluation = entry.dagster_event.event_specific_data if entry.dagster_event else None
            if not isinstance(evaluation, AssetCheckEvaluation) or evaluation.passed:
                continue
            if evaluation.check_name not in MONITORING_CHECKS:
                continue
            metadata = {k: v.value for k, v in evaluation.metadata.items()}
            yield updated, partition, evaluation.check_name, metadata
        yield updated, partition, "", {}  # marks the run as seen


def alert_text(partition: str, check: str, metadata: dict[str, Any]) -> tuple[str, str]:
    subject = f"[studperf] {check} failed on {partition}"
    numbers = "\n".join(f"  {k}: {v}" for k, v in sorted(metadata.items()) if k != "report")
    body = (
        f"The monitoring check '{check}' failed for prediction batch {partition}.\n\n"
        f"{numbers}\n\nReport: {metadata.get('report', 'n/a')}\n"
    )
    return subject, body


@sensor(minimum_interval_seconds=30, default_status=DefaultSensorStatus.STOPPED)
def monitoring_alert_sensor(
    context: SensorEvaluationContext, alert_sender: AlertSender, metrics_database: MetricsDatabase
) -> SkipReason:
    """E-mail (SES) each failed monitoring check once per partition. A failed send is
    logged and retried on the next tick; it never crashes the sensor."""
    after = float(context.cursor or 0)
    sent, failed_sends = 0, 0
    safe_until = after
    for updated, partition, check, metadata in failed_checks(context, after):
        if check and not metrics_database.alert_sent(partition, check):
            subject, body = alert_text(partition, check, metadata)
            try:
                message_id = alert_sender.send(subject, body)
            except Exception as exc:  # noqa: BLE001 - retried next tick
                context.log.error(f"alert for {partition}/{check} not sent, will retry: {exc}")
                failed_sends += 1
                continue
            metrics_database.record_alert(partition, check, message_id)
            sent += 1
        if not failed_sends:
            safe_until = max(safe_until, updated)
    context.update_cursor(str(safe_until))
    return SkipReason(f"{sent} alerts sent, {failed_sends} to retry")


@sensor(
    job_name=TRAINING_JOB, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED
)
def retraining_sensor(
    context: SensorEvaluationContext,
    object_store: ObjectStore,
    monitoring_settings: MonitoringSettings,
) -> SensorResult | SkipReason:
    """Drift or a performance drop, enough newly labelled rows, and the cooldown passed:
    retrain on the data plus the labelled production rows. The new bundle still has to
    pass the champion check before it is promoted."""
    state = (
        json.loads(context.cursor)
        if context.cursor
        else {"after": 0.0, "last_retrain": 0.0, "labels": 0}
    )
    triggers = [
        (u, p, c) for u, p, c, _ in failed_checks(context, state["after"]) if c in RETRAINING_CHECKS
    ]
    if not triggers:
        return SkipReason("no drift or performance failure since the last look")
    now = datetime.now(UTC).timestamp()
    labels = len(arrived_labels(object_store))
    new_labels = labels - state["labels"]
    if now - state["last_retrain"] < monitoring_settings.retraining_cooldown_seconds:
        return SkipReason("retraining cooldown")  # cursor unchanged: the failures still count
    if new_labels < monitoring_settings.min_new_labels_for_retraining:
        needed = monitoring_settings.min_new_labels_for_retraining
        return SkipReason(f"{new_labels} new labelled rows; {needed} needed")
    updated, partition, check = triggers[-1]
    state = {"after": updated, "last_retrain": now, "labels": labels}
    request = RunRequest(
        run_key=f"retrain-{int(now)}",
        run_config={"ops": {"raw_student_data": {"config": {"include_production_labels": True}}}},
        tags={"studperf/trigger": f"{check}@{partition}", "studperf/new_labels": str(new_labels)},
    )
    return SensorResult(run_requests=[request], cursor=json.dumps(state))
