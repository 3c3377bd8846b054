"""Sensors beside the monitoring assets: new batches, late labels, alerts and retraining.

``build_sensors`` makes them with the deployment's default status (running wherever the
platform is deployed, unless a setting says otherwise) and tick interval.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from studperf_assets.assets.monitoring import prediction_batch_partitions
from studperf_assets.assets.platform_health import (
    RunFailure,
    describe,
    notice_for,
    record_failed_run,
    resolve_repaired,
    run_failure,
    send_due_notices,
    tell_directly,
    watch_sensors,
)
from studperf_assets.assets.reports import MONITORING_CHECKS, RETRAINING_CHECKS
from studperf_assets.jobs import IN_PROCESS, monitoring_job, training_job
from studperf_assets.lib.alert_email import BatchAlert, FailedCheck
from studperf_assets.resources.ground_truth import GroundTruth
from studperf_assets.resources.metrics_db import MetricsDatabase, MonitoringDatabaseError
from studperf_assets.resources.monitoring import (
    AlertSender,
    MonitoringSettings,
    PredictionStream,
)
from studperf_assets.resources.monitoring_schema import stored_key
from studperf_assets.resources.object_store import ObjectStore

MAX_BATCHES_PER_TICK = 20
MAX_LABEL_FILES_PER_TICK = 200
JOIN_CLOCK_SLACK = timedelta(seconds=2)  # a join this close to an ingestion may have missed it
# Label files are re-listed this far back: a run that stamped a file earlier than one the
# sensor has seen may commit later (clocks of two processes, a slow transaction).
HANDLED_SLACK = timedelta(minutes=2)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC) + HANDLED_SLACK
PARTITION_TAG = "dagster/partition"
PARTITIONS_NAME = str(prediction_batch_partitions.name)
BATCH_KEY = re.compile(r"batch-(\d+)")
ALERT_SENSOR = "monitoring_alert_sensor"


def batch_key(number: int) -> str:
    return f"batch-{number:06d}"


def last_batch_number(context: SensorEvaluationContext) -> int:
    """The highest batch number the instance knows: numbering continues after a restart
    with a new stream (or a lost cursor) instead of reusing a key."""
    keys = context.instance.get_dynamic_partitions(PARTITIONS_NAME)
    numbers = [int(m.group(1)) for k in keys if (m := BATCH_KEY.fullmatch(k))]
    return max(numbers, default=0)


def cut_batches(
    context: SensorEvaluationContext,
    prediction_stream: PredictionStream,
    monitoring_settings: MonitoringSettings,
) -> SensorResult | SkipReason:
    """Every ``batch_size`` new predictions become a partition and a monitoring run.

    The cursor holds each shard's last sequence number; a partition's run is told the exact
    range it covers (the sensor reads to count, the run reads that range again), so batches
    never overlap and none is lost. A recreated stream starts over from its beginning."""
    state: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
    stream = prediction_stream.identity()
    positions: dict[str, str] = state.get("positions", {}) if state.get("stream") == stream else {}
    number = max(int(state.get("count", 0)), last_batch_number(context))
    requests, keys = [], []
    for _ in range(MAX_BATCHES_PER_TICK):
        records, after = prediction_stream.read(positions, limit=monitoring_settings.batch_size)
        if len(records) < monitoring_settings.batch_size:
            break
        number += 1
        key = batch_key(number)
        config = {"after": positions, "until": after}
        requests.append(
            RunRequest(
                run_key=key,
                partition_key=key,
                run_config={**IN_PROCESS, "ops": {"prediction_batches": {"config": config}}},
            )
        )
        keys.append(key)
        positions = after
    cursor = json.dumps({"stream": stream, "positions": positions, "count": number})
    if not requests:
        if cursor != context.cursor:
            context.update_cursor(cursor)
        return SkipReason(f"fewer than {monitoring_settings.batch_size} new predictions")
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[prediction_batch_partitions.build_add_request(keys)],
        cursor=cursor,
    )


def rerun_for_late_labels(
    context: SensorEvaluationContext,
    ground_truth: GroundTruth,
    metrics_database: MetricsDatabase,
) -> SensorResult | SkipReason:
    """When labels arrive for predictions in batches that joined their labels before those
    arrived, re-run those batches, so their quality and the performance check catch up.

    Looks at two things each tick: the label files that runs ingested since the last tick
    (from the monitoring database's ledger, by the time they were handled: our clock, not a
    writer's), and the files under ``labels/`` that no run has ingested yet. Their
    predictions are found through the prediction index. A batch is re-run only if it joined
    its labels before the file was ingested (or the file is not ingested yet): not a batch
    whose first run is still on its way, and not one that already saw the file."""
    try:
        return _rerun_for_late_labels(context, ground_truth, metrics_database)
    except MonitoringDatabaseError as error:
        return SkipReason(f"{error}; label files wait for the next tick")


def _rerun_for_late_labels(
    context: SensorEvaluationContext, ground_truth: GroundTruth, metrics_database: MetricsDatabase
) -> SensorResult | SkipReason:
    state = json.loads(context.cursor) if context.cursor else {}
    now = datetime.now(UTC)
    # a first tick looks at the whole ledger, a page per tick
    after = datetime.fromisoformat(state["after"]) if "after" in state else EPOCH
    seen = set(state.get("seen", []))
    reruns: dict[str, str] = {}  # partition -> the label file it has not seen
    handled = [
        (key, status, at)
        for key, status, at in metrics_database.label_files_handled_since(after - HANDLED_SLACK)
        if key not in seen
    ][:MAX_LABEL_FILES_PER_TICK]
    for key, status, handled_at in handled:
        if status == "ingested":
            ids = metrics_database.request_ids_labelled_by(key)
            _missed(metrics_database, ids, handled_at, key, reruns)
    unseen = ground_truth.unseen_files(now)[:MAX_LABEL_FILES_PER_TICK]
    for key in unseen:  # the run that reads it will ingest it
        _missed(metrics_database, ground_truth.request_ids_in(key), None, key, reruns)
    newest = max([after, *(at for _, _, at in handled)])
    cursor = {
        "after": newest.isoformat(),
        "seen": sorted(
            {k for k in seen | {k for k, _, _ in handled}}
            & {k for k, _, at in metrics_database.label_files_handled_since(newest - HANDLED_SLACK)}
        ),
    }
    requests = [
        RunRequest(run_key=f"{partition}@{stored_key(key)}", partition_key=partition)
        for partition, key in sorted(reruns.items())
    ]
    summary = (
        f"{len(handled)} label files ingested since the last look, {len(unseen)} not ingested "
        f"yet; re-running {len(requests)} batches"
    )
    context.log.info(summary)
    skip = None if requests else SkipReason(summary)  # the daemon shows why, not "empty result"
    return SensorResult(run_requests=requests, cursor=json.dumps(cursor), skip_reason=skip)


def _missed(
    database: MetricsDatabase,
    request_ids: set[str],
    handled_at: datetime | None,
    key: str,
    reruns: dict[str, str],
) -> None:
    """Add the batches holding ``request_ids`` that joined their labels before the file
    was handled (``None``: not handled yet) and still lack some."""
    for partition, join in database.label_joins(database.partitions_for(request_ids)).items():
        complete = join["labelled"] >= join["rows"]
        missed = handled_at is None or join["joined_at"] <= handled_at + JOIN_CLOCK_SLACK
        if not complete and missed:
            reruns[partition] = max(key, reruns.get(partition, ""))


@dataclass
class MonitoringRun:
    """A finished run of a watched job, and what went wrong in it: the monitoring checks
    that failed (monitoring runs), or where the run itself failed."""

    updated: float
    partition: str
    run_id: str
    failed: dict[str, dict[str, Any]]  # check name -> its metadata
    job: str = "monitoring_job"
    failure: RunFailure | None = None  # None: the run succeeded


WATCHED_JOBS = ("monitoring_job", "training_job")


def finished_runs(
    context: SensorEvaluationContext, after: float, jobs: tuple[str, ...] = WATCHED_JOBS
) -> Iterator[MonitoringRun]:
    """Runs of ``jobs`` finished after ``after`` (a timestamp), oldest first."""
    records = context.instance.get_run_records(
        filters=RunsFilter(
            statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE],
            updated_after=datetime.fromtimestamp(after, UTC),
        ),
        order_by="update_timestamp",
        ascending=True,
        limit=200,
    )
    for record in records:
        dagster_run = record.dagster_run
        if dagster_run.job_name not in jobs:
            continue
        failed = dagster_run.status == DagsterRunStatus.FAILURE
        run = MonitoringRun(
            updated=record.update_timestamp.timestamp(),
            partition=dagster_run.tags.get(PARTITION_TAG, ""),
            run_id=dagster_run.run_id,
            failed={},
            job=dagster_run.job_name,
            failure=run_failure(context.instance, dagster_run.run_id) if failed else None,
        )
        for entry in context.instance.all_logs(
            run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
        ):
            evaluation = entry.dagster_event.event_specific_data if entry.dagster_event else None
            if not isinstance(evaluation, AssetCheckEvaluation) or evaluation.passed:
                continue
            if evaluation.check_name in MONITORING_CHECKS:
                metadata = {k: v.value for k, v in evaluation.metadata.items()}
                run.failed[evaluation.check_name] = metadata
        yield run


def monitoring_runs(context: SensorEvaluationContext, after: float) -> Iterator[MonitoringRun]:
    """Monitoring runs finished after ``after`` (a timestamp), oldest first."""
    return finished_runs(context, after, jobs=(monitoring_job.name,))


def batch_alert(
    run: MonitoringRun, checks: dict[str, dict[str, Any]], sender: AlertSender, store: ObjectStore
) -> BatchAlert:
    """The e-mail for a run's failed checks: facts from the checks, links to the run and
    the report (presigned, when the store is S3)."""
    facts = next((m for m in checks.values() if "model_version" in m), {})
    report_key = str(facts.get("report_key") or "")
    return BatchAlert(
        partition=run.partition,
        checks=[FailedCheck(name, metadata) for name, metadata in checks.items()],
        rows=facts.get("rows"),
        model_version=str(facts.get("model_version", "")),
        run_url=sender.run_url(run.run_id),
        report_url=store.share_url(report_key) if report_key else "",
    )


def send_alerts(
    context: SensorEvaluationContext,
    alert_sender: AlertSender,
    metrics_database: MetricsDatabase,
    object_store: ObjectStore,
    monitoring_settings: MonitoringSettings,
) -> SkipReason:
    """Tells the on-call (SES) what went wrong: one e-mail per monitored batch listing every
    failed check not yet alerted, and one per incident when a monitoring or training run
    fails or a sensor keeps failing (at most one reminder an hour while it lasts, one when
    it is resolved). A failed send is logged and retried on the next tick.

    Once per partition and check is kept twice over: by the cursor, and by ``alerts_sent``
    should the cursor be lost. With the monitoring database down the alert still goes out
    (the cursor alone keeps it once): an outage must not silence drift, nor a failure."""
    after = float(context.cursor or 0)
    sent, failed_sends = 0, 0
    safe_until = after
    succeeded: set[str] = set()
    for run in finished_runs(context, after):
        if run.failure is not None:
            if not _record_failure(context, run, alert_sender, metrics_database):
                failed_sends += 1
        else:
            succeeded.add(run.job)
        pending = {
            check: metadata
            for check, metadata in run.failed.items()
            if not _already_sent(context, metrics_database, run.partition, check)
        }
        if pending:
            alert = batch_alert(run, pending, alert_sender, object_store)
            try:
                message_id = alert_sender.send(alert.subject, alert.text(), alert.html())
            except Exception as exc:  # noqa: BLE001 - retried next tick
                context.log.error(f"alert for {run.partition} not sent, will retry: {exc}")
                failed_sends += 1
                continue
            context.log.info(f"alert sent for {run.partition}: {', '.join(pending)}")
            for check in pending:
                try:
                    metrics_database.record_alert(run.partition, check, message_id)
                except MonitoringDatabaseError as error:
                    context.log.warning(
                        f"alert {run.partition}/{check} sent, not recorded: {error}"
                    )
            sent += 1
        if not failed_sends:
            safe_until = max(safe_until, run.updated)
    context.update_cursor(str(safe_until))
    told, untold = _incidents(
        context, alert_sender, metrics_database, monitoring_settings, succeeded
    )
    return SkipReason(
        f"{sent} alerts sent, {failed_sends} to retry; {told} incident e-mails sent"
        + (f", {untold} to retry" if untold else "")
    )


def _record_failure(
    context: SensorEvaluationContext,
    run: MonitoringRun,
    sender: AlertSender,
    database: MetricsDatabase,
) -> bool:
    """A failed run as an incident occurrence (or, the database being down, an e-mail at
    once); False if neither could be done (the cursor then waits for it)."""
    assert run.failure is not None
    what = f"{run.partition}: " if run.partition else ""
    context.log.info(
        f"not monitored: {what}{run.job} failed at {run.failure.step}: {run.failure.error}"
        if run.job == monitoring_job.name
        else f"run failed: {run.job} at {run.failure.step}: {run.failure.error}"
    )
    try:
        record_failed_run(
            database, run.job, run.run_id, run.partition, run.failure, sender.run_url(run.run_id)
        )
    except MonitoringDatabaseError as error:
        title = f"{run.job} failed at {run.failure.step}"
        return tell_directly(
            context, sender, title, describe(run.failure, run.job, run.partition), error
        )
    return True


def _incidents(
    context: SensorEvaluationContext,
    sender: AlertSender,
    database: MetricsDatabase,
    settings: MonitoringSettings,
    succeeded: set[str],
) -> tuple[int, int]:
    """Resolve what was repaired, watch the other sensors, send the e-mails incidents are
    owed. A database outage postpones all of it to the next tick."""
    try:
        resolve_repaired(database, succeeded)
        watch_sensors(context, database, exclude=ALERT_SENSOR)
        reminder = timedelta(seconds=settings.incident_reminder_seconds)
        return send_due_notices(context, database, sender, reminder)
    except MonitoringDatabaseError as error:
        context.log.warning(f"{error}: incidents wait for the next tick")
        return 0, 0


def _already_sent(
    context: SensorEvaluationContext, database: MetricsDatabase, partition: str, check: str
) -> bool:
    try:
        return database.alert_sent(partition, check)
    except MonitoringDatabaseError as error:
        context.log.warning(f"{error}: sending without the alerts_sent record")
        return False


def request_retraining(
    context: SensorEvaluationContext,
    ground_truth: GroundTruth,
    monitoring_settings: MonitoringSettings,
    alert_sender: AlertSender,
    metrics_database: MetricsDatabase,
) -> SensorResult | SkipReason:
    """Drift or a performance drop, enough newly labelled rows, and the cooldown passed:
    retrain on the data plus the labelled production rows. The new bundle still has to
    pass the champion check before it is promoted. Also watches the alert sensor, which
    cannot report its own failures."""
    _watch_the_watcher(context, alert_sender, metrics_database)
    state = (
        json.loads(context.cursor)
        if context.cursor
        else {"after": 0.0, "last_retrain": 0.0, "labels": 0}
    )
    triggers = [
        (run.updated, run.partition, check)
        for run in monitoring_runs(context, state["after"])
        for check in run.failed
        if check in RETRAINING_CHECKS
    ]
    if not triggers:
        return SkipReason("no drift or performance failure since the last look")
    now = datetime.now(UTC).timestamp()
    if now - state["last_retrain"] < monitoring_settings.retraining_cooldown_seconds:
        return SkipReason("retraining cooldown")  # cursor unchanged: the failures still count
    try:
        labels = ground_truth.usable_labels()
    except MonitoringDatabaseError as error:
        return SkipReason(f"{error}; retraining waits for it")  # cursor unchanged
    new_labels = labels - state["labels"]
    if new_labels < monitoring_settings.min_new_labels_for_retraining:
        needed = monitoring_settings.min_new_labels_for_retraining
        return SkipReason(f"{new_labels} new labelled rows; {needed} needed")
    updated, partition, check = triggers[-1]
    state = {"after": updated, "last_retrain": now, "labels": labels}
    context.log.info(f"retraining: {check} failed on {partition}; {new_labels} new labelled rows")
    request = RunRequest(
        run_key=f"retrain-{int(now)}",
        run_config={"ops": {"raw_student_data": {"config": {"include_production_labels": True}}}},
        tags={"studperf/trigger": f"{check}@{partition}", "studperf/new_labels": str(new_labels)},
    )
    return SensorResult(run_requests=[request], cursor=json.dumps(state))


def _watch_the_watcher(
    context: SensorEvaluationContext, sender: AlertSender, database: MetricsDatabase
) -> None:
    """If the alert sensor keeps failing, its incident is recorded and its first e-mail sent
    from here (reminders and the resolution follow from the alert sensor once it is back)."""
    try:
        for incident in watch_sensors(context, database, names={ALERT_SENSOR}):
            if incident.notified_at is None:
                email = notice_for(incident, "opened", sender.dagster_url)
                sender.send(email.subject, email.text(), email.html())
                database.mark_notified(incident.id, "opened")
    except Exception as exc:  # noqa: BLE001 - never stops retraining; retried next tick
        context.log.warning(f"watching {ALERT_SENSOR}: {exc}")


def _summary(function: Any) -> str:
    """A sensor's description in the Dagster UI: the first paragraph of its docstring."""
    return " ".join(str(function.__doc__).split("\n\n")[0].split())


def build_sensors(running: bool = True, interval_seconds: int = 15) -> list[SensorDefinition]:
    """The four sensors, running by default (or stopped, for those who want that)."""
    status = DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED
    return [
        sensor(
            name="prediction_batch_sensor",
            job=monitoring_job,
            minimum_interval_seconds=interval_seconds,
            default_status=status,
            description=_summary(cut_batches),
        )(cut_batches),
        sensor(
            name="late_labels_sensor",
            job=monitoring_job,
            minimum_interval_seconds=interval_seconds * 2,
            default_status=status,
            description=_summary(rerun_for_late_labels),
        )(rerun_for_late_labels),
        sensor(
            name="monitoring_alert_sensor",
            minimum_interval_seconds=interval_seconds,
            default_status=status,
            description=_summary(send_alerts),
        )(send_alerts),
        sensor(
            name="retraining_sensor",
            job=training_job,
            minimum_interval_seconds=interval_seconds * 2,
            default_status=status,
            description=_summary(request_retraining),
        )(request_retraining),
    ]
