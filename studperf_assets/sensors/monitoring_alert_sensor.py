"""monitoring_alert_sensor: tells the on-call (SES) what went wrong, once per incident."""

from datetime import UTC, datetime, timedelta
from typing import Any

from dagster import SensorEvaluationContext, SkipReason

from studperf_assets.constants import MONITORING_ALERT_SENSOR, MONITORING_JOB
from studperf_assets.lib.alert_email import BatchAlert, FailedCheck
from studperf_assets.lib.incidents import Incident, verdicts
from studperf_assets.lib.loop_events import ALERT_SENT, NOT_MONITORED, emit
from studperf_assets.resources.metrics_db import MetricsDatabase, MonitoringDatabaseError
from studperf_assets.resources.monitoring import AlertSender, MonitoringSettings
from studperf_assets.resources.object_store import ObjectStore
from studperf_assets.sensors import incidents
from studperf_assets.sensors.incidents import (
    SendFailures,
    describe,
    escalate_undelivered,
    record_failed_run,
    resolve_repaired,
    send_due_notices,
    settle_check_incidents,
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
    """Tells the on-call (SES) what went wrong, once per incident: checks failing on
    consecutive monitored windows (one incident per group of checks: drift, performance,
    each data check), a monitoring or training run that fails, a sensor that keeps failing.
    One e-mail when an incident opens, at most one reminder per `incident_reminder_seconds`
    while it lasts, one when it is resolved (failed checks: after
    `incident_resolve_after_passing` consecutive passing windows). A failed send is logged
    and retried on the next tick.

    Each window's check verdicts are recorded in the monitoring database before any e-mail,
    and e-mails are sent from the incidents, marked when sent: a tick evaluated twice, or a
    lost cursor, sends nothing twice. With the monitoring database down a window's failed
    checks are e-mailed at once (the cursor alone keeps it once): an outage must not silence
    drift, nor a failure. E-mails SES keeps refusing for `alert_failure_seconds` are an
    incident of their own and fail the tick (``escalate_undelivered``)."""
    now = incidents.clock()
    after = float(context.cursor or 0)
    recorded, direct, failed_sends = 0, 0, 0
    failures = SendFailures()  # SES refusing for too long: an incident, and the tick fails
    safe_until = after
    succeeded: set[str] = set()
    for run in finished_runs(context, after):
        if run.failure is not None:
            if not _record_failure(context, run, alert_sender, metrics_database, failures):
                failed_sends += 1
        else:
            succeeded.add(run.job)
        if run.partition and (run.failed or run.passed):
            outcome = _record_checks(
                context, run, alert_sender, metrics_database, object_store, failures
            )
            recorded += outcome == "recorded"
            direct += outcome == "told"
            failed_sends += outcome == "untold"
        if not failed_sends:
            safe_until = max(safe_until, run.updated)
    context.update_cursor(str(safe_until))
    told, untold, still_open = _incidents(
        context,
        alert_sender,
        metrics_database,
        object_store,
        monitoring_settings,
        succeeded,
        now,
        failures,
    )
    escalate_undelivered(
        context,
        metrics_database,
        failures,
        monitoring_settings.alert_failure_seconds,
        advanced=safe_until > after,
    )
    summary = f"{recorded} windows' checks recorded"
    if direct or failed_sends:
        summary += f", {direct} alerts sent without the database, {failed_sends} to retry"
    summary += f"; {told} incident e-mails sent" + (f", {untold} to retry" if untold else "")
    return SkipReason(summary + "; open: " + ("; ".join(still_open) or "none"))


def _record_checks(
    context: SensorEvaluationContext,
    run: MonitoringRun,
    sender: AlertSender,
    database: MetricsDatabase,
    store: ObjectStore,
    failures: SendFailures,
) -> str:
    """A window's check verdicts, recorded ("recorded"); with the database down, its failed
    checks e-mailed at once ("told"), or not ("untold": the cursor waits for it), and its
    passed checks not kept ("lost": the incident resolves a window later)."""
    finished = datetime.fromtimestamp(run.updated, UTC)
    try:
        database.record_verdicts(
            run.partition, run.run_id, finished, verdicts(run.failed, run.passed)
        )
        return "recorded"
    except MonitoringDatabaseError as error:
        if not run.failed:
            context.log.warning(f"{error}: the passed checks of {run.partition} are not kept")
            return "lost"
        context.log.warning(f"{error}: alerting {run.partition} without an incident")
    alert = batch_alert(run, run.failed, sender, store)
    try:
        sender.send(alert.subject, alert.text(), alert.html())
    except Exception as exc:  # noqa: BLE001 - retried next tick
        context.log.error(f"alert for {run.partition} not sent, will retry: {exc}")
        failures.add(run.updated, exc)
        return "untold"
    emit(context.log.info, ALERT_SENT, window=run.partition, checks=list(run.failed))
    return "told"


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
    store: ObjectStore,
    settings: MonitoringSettings,
    succeeded: set[str],
    now: datetime,
    failures: SendFailures,
) -> tuple[int, int, list[str]]:
    """Resolve what was repaired, settle the failed-checks incidents, watch the other
    sensors, send the e-mails incidents are owed; returns (sent, to retry, the open
    incidents as the tick's message shows them). A database outage postpones all of it to
    the next tick."""
    try:
        resolve_repaired(database, succeeded)
        settle_check_incidents(database, settings.incident_resolve_after_passing, now)
        watch_sensors(context, database, exclude=MONITORING_ALERT_SENSOR)
        watch_stuck_runs(
            context, database, WATCHED_JOBS, settings.stuck_run_seconds, sender.run_url
        )
        reminder = timedelta(seconds=settings.incident_reminder_seconds)
        sent, failed = send_due_notices(
            context, database, sender, reminder, now, store.share_url, failures
        )
        return sent, failed, [_shown(i) for i in database.incidents(status="open")]
    except MonitoringDatabaseError as error:
        context.log.warning(f"{error}: incidents wait for the next tick")
        return 0, 0, []


def _shown(incident: Incident) -> str:
    span = incident.first_partition or ""
    if incident.last_partition and incident.last_partition != incident.first_partition:
        span += f" .. {incident.last_partition}"
    where = f", {span}" if span else ""
    return f"#{incident.id} {incident.key} ({incident.occurrences} occurrences{where})"
