"""monitoring_alert_sensor: tells the on-call (SES) what went wrong, once."""

from datetime import timedelta
from typing import Any

from dagster import SensorEvaluationContext, SkipReason

from studperf_assets.constants import MONITORING_ALERT_SENSOR, MONITORING_JOB
from studperf_assets.lib.alert_email import BatchAlert, FailedCheck
from studperf_assets.lib.loop_events import ALERT_SENT, NOT_MONITORED, emit
from studperf_assets.resources.metrics_db import MetricsDatabase, MonitoringDatabaseError
from studperf_assets.resources.monitoring import AlertSender, MonitoringSettings
from studperf_assets.resources.object_store import ObjectStore
from studperf_assets.sensors.incidents import (
    SendFailures,
    describe,
    escalate_undelivered,
    record_failed_run,
    resolve_repaired,
    send_due_notices,
    tell_directly,
    watch_sensors,
    watch_stuck_runs,
)
from studperf_assets.sensors.runs import WATCHED_JOBS, MonitoringRun, finished_runs


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


def monitoring_alert_sensor(
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
    failures = SendFailures()  # SES refusing for too long: an incident, and the tick fails
    safe_until = after
    succeeded: set[str] = set()
    for run in finished_runs(context, after):
        if run.failure is not None:
            if not _record_failure(context, run, alert_sender, metrics_database, failures):
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
                failures.add(run.updated, exc)
                failed_sends += 1
                continue
            emit(context.log.info, ALERT_SENT, window=run.partition, checks=list(pending))
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
        context, alert_sender, metrics_database, monitoring_settings, succeeded, failures
    )
    escalate_undelivered(
        context,
        metrics_database,
        failures,
        monitoring_settings.alert_failure_seconds,
        advanced=safe_until > after,
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
    failures: SendFailures,
) -> bool:
    """A failed run as an incident occurrence (or, the database being down, an e-mail at
    once); False if neither could be done (the cursor then waits for it)."""
    assert run.failure is not None
    if run.job == MONITORING_JOB:
        emit(
            context.log.info,
            NOT_MONITORED,
            window=run.partition,
            job=run.job,
            step=run.failure.step,
            error=run.failure.error,
        )
    else:
        context.log.info(f"run failed: {run.job} at {run.failure.step}: {run.failure.error}")
    try:
        record_failed_run(
            database, run.job, run.run_id, run.partition, run.failure, sender.run_url(run.run_id)
        )
    except MonitoringDatabaseError as error:
        title = f"{run.job} failed at {run.failure.step}"
        facts = describe(run.failure, run.job, run.partition)
        return tell_directly(context, sender, title, facts, error, failures, run.updated)
    return True


def _incidents(
    context: SensorEvaluationContext,
    sender: AlertSender,
    database: MetricsDatabase,
    settings: MonitoringSettings,
    succeeded: set[str],
    failures: SendFailures,
) -> tuple[int, int]:
    """Resolve what was repaired, watch the other sensors, send the e-mails incidents are
    owed. A database outage postpones all of it to the next tick."""
    try:
        resolve_repaired(database, succeeded)
        watch_sensors(context, database, exclude=MONITORING_ALERT_SENSOR)
        watch_stuck_runs(
            context, database, WATCHED_JOBS, settings.stuck_run_seconds, sender.run_url
        )
        reminder = timedelta(seconds=settings.incident_reminder_seconds)
        return send_due_notices(context, database, sender, reminder, failures)
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
