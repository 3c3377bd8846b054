"""monitoring_alert_sensor: tells the on-call (SES) what went wrong, once per incident."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from dagster import SensorEvaluationContext, SkipReason

from studperf_assets.constants import MONITORING_ALERT_SENSOR, MONITORING_JOB
from studperf_assets.lib.alert_email import INCIDENT_RUNBOOK
from studperf_assets.lib.incidents import Incident, first_line, verdicts
from studperf_assets.lib.loop_events import INCIDENT, NOT_MONITORED, emit
from studperf_assets.resources.metrics_db import MetricsDatabase, MonitoringDatabaseError
from studperf_assets.resources.monitoring import AlertSender, MonitoringSettings
from studperf_assets.resources.object_store import ObjectStore
from studperf_assets.sensors import incidents
from studperf_assets.sensors.incidents import (
    SendFailures,
    alert_context,
    escalate_undelivered,
    record_failed_run,
    resolve_repaired,
    send_due_notices,
    settle_check_incidents,
    tell_directly,
    watch_sensors,
    watch_stuck_runs,
)
from studperf_assets.sensors.runs import WATCHED_JOBS, MonitoringRun, finished_runs, runs_by_id

# Runs the cursor keeps waiting for the monitoring database (the newest; older ones are
# named in the log when dropped), and how many of them the outage e-mail lists.
MAX_PENDING_RUNS = 500
LISTED_IN_OUTAGE_EMAIL = 20
OUTAGE_TITLE = "monitoring database down"
OUTAGE_KIND = "database_down"


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

    Each finished run is recorded in the monitoring database (a window's check verdicts, a
    failed run as an incident occurrence and the window's status) before any e-mail, and
    e-mails are sent from the incidents, marked when sent: a tick evaluated twice, or a
    lost cursor, sends nothing twice. With the monitoring database down, the runs it could
    not record wait in the cursor (the newest `MAX_PENDING_RUNS`) and are recorded once it
    is back, so their incidents open, de-duplicate and resolve as usual; the on-call gets
    one "monitoring database down" e-mail per outage, naming the failed runs and failed
    checks waiting (an outage must not silence drift, nor a failure). E-mails SES keeps
    refusing for `alert_failure_seconds` are an incident of their own and fail the tick
    (``escalate_undelivered``)."""
    now = incidents.clock()
    before = context.cursor
    state = _state(before)
    after: float = state["after"]
    waiting = runs_by_id(context, state["pending"])
    known = {run.run_id for run in waiting}
    new = [run for run in finished_runs(context, after) if run.run_id not in known]
    for run in new:
        _announce(context, run)
    failures = SendFailures()  # SES refusing for too long: an incident, and the tick fails
    recorded, succeeded, unrecorded = 0, set(), []
    error: str | None = None
    for run in sorted([*waiting, *new], key=lambda r: r.updated):
        if run.failure is None:
            succeeded.add(run.job)
        if not _to_record(run):
            continue
        if error is None:  # after one refusal the others wait too: no tick-long timeouts
            try:
                recorded += _record(run, alert_sender, metrics_database)
                continue
            except MonitoringDatabaseError as refused:
                error = str(refused)
        unrecorded.append(run)
    if error is None:
        told, untold, still_open, error = _incidents(
            context,
            alert_sender,
            metrics_database,
            object_store,
            monitoring_settings,
            succeeded,
            now,
            failures,
        )
    else:
        told, untold, still_open = [], 0, []
        context.log.warning(f"{error}: {len(unrecorded)} runs wait for it")
    pending = [run.run_id for run in unrecorded]
    if len(pending) > MAX_PENDING_RUNS:
        dropped = pending[:-MAX_PENDING_RUNS]
        context.log.error(f"{len(dropped)} runs will not be recorded: {', '.join(dropped)}")
        pending = pending[-MAX_PENDING_RUNS:]
    outage = _outage(context, state.get("outage"), error, unrecorded, alert_sender, failures)
    if outage and outage["told"] and not (state.get("outage") or {}).get("told"):
        told.append(f"OPEN {OUTAGE_TITLE} ERROR")
    if state.get("outage") and outage is None:
        context.log.info(f"monitoring database back: {len(waiting)} waiting runs looked at")
    cursor = json.dumps(
        {"after": max([after, *(r.updated for r in new)]), "pending": pending, "outage": outage}
    )
    context.update_cursor(cursor)
    escalate_undelivered(
        context,
        metrics_database,
        failures,
        monitoring_settings.alert_failure_seconds,
        advanced=cursor != before,
    )
    return SkipReason(
        _tick_message(alert_sender, told, untold, recorded, pending, outage, failures, still_open)
    )


def _tick_message(
    sender: AlertSender,
    told: list[str],
    untold: int,
    recorded: int,
    pending: list[str],
    outage: dict[str, Any] | None,
    failures: SendFailures,
    still_open: list[str],
) -> str:
    """The tick's message in the Dagster UI (its skip reason: the tick requests no run),
    leading with what it sent and to whom, so the tick that e-mailed reads differently from
    the ones that did not."""
    if told:
        to = ", ".join(sender.recipients)
        message = f"sent {_count(len(told), 'e-mail')} to {to}: " + "; ".join(told)
    else:
        message = "sent nothing"
    if untold:
        message += f"; {_count(untold, 'e-mail')} to retry"
    message += f" | {recorded} windows' checks recorded"
    if pending:
        message += f", {len(pending)} runs wait for the monitoring database"
        if outage and not outage["told"] and failures.count:
            message += "; its outage e-mail to retry"
    return message + " | open: " + ("; ".join(still_open) or "none")


def _state(cursor: str | None) -> dict[str, Any]:
    """The cursor: runs finished up to ``after`` (a timestamp) were seen; ``pending`` are
    the ids of those not recorded yet; ``outage``: since when the database is down, and
    whether its e-mail went out. A cursor of the earlier form (a timestamp) is read too."""
    if not cursor:
        return {"after": 0.0, "pending": [], "outage": None}
    if not cursor.lstrip().startswith("{"):
        return {"after": float(cursor), "pending": [], "outage": None}
    state = json.loads(cursor)
    return {
        "after": float(state.get("after", 0.0)),
        "pending": list(state.get("pending", [])),
        "outage": state.get("outage"),
    }


def _announce(context: SensorEvaluationContext, run: MonitoringRun) -> None:
    """A failed run, said once when it is first seen (a window: "not monitored")."""
    if run.failure is None:
        return
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


def _to_record(run: MonitoringRun) -> bool:
    return run.failure is not None or bool(run.partition and (run.failed or run.passed))


def _record(run: MonitoringRun, sender: AlertSender, database: MetricsDatabase) -> int:
    """A finished run in the monitoring database: its window's check verdicts, its failure
    as an incident occurrence (and the window's status). Returns 1 if a window's verdicts
    were recorded. Raises ``MonitoringDatabaseError`` (the run then waits)."""
    checks = 0
    if run.partition and (run.failed or run.passed):
        finished = datetime.fromtimestamp(run.updated, UTC)
        database.record_verdicts(
            run.partition, run.run_id, finished, verdicts(run.failed, run.passed)
        )
        checks = 1
    if run.failure is not None:
        record_failed_run(
            database, run.job, run.run_id, run.partition, run.failure, sender.run_url(run.run_id)
        )
    return checks


def _outage(
    context: SensorEvaluationContext,
    outage: dict[str, Any] | None,
    error: str | None,
    unrecorded: list[MonitoringRun],
    sender: AlertSender,
    failures: SendFailures,
) -> dict[str, Any] | None:
    """The outage's state for the cursor (None: the database answered everything). Its one
    e-mail goes out once a failed run or failed checks wait for the database."""
    if error is None:
        return None
    outage = dict(outage or {"since": incidents.clock().timestamp(), "told": False})
    outage["error"] = first_line(error)
    telling = [run for run in unrecorded if run.failure is not None or run.failed]
    if outage["told"] or not telling:
        return outage
    since = datetime.fromtimestamp(outage["since"], UTC)
    facts = [
        ("since", since.isoformat(timespec="seconds")),
        ("error", outage["error"]),
        ("waiting", f"{len(unrecorded)} finished runs not recorded yet, {len(telling)} of them:"),
    ]
    facts += [(run.partition or run.job, _what(run)) for run in telling[:LISTED_IN_OUTAGE_EMAIL]]
    if len(telling) > LISTED_IN_OUTAGE_EMAIL:
        facts.append(("and", f"{len(telling) - LISTED_IN_OUTAGE_EMAIL} more"))
    facts.append(
        (
            "next",
            "once the database is back they are recorded as incidents (e-mailed as usual) "
            "and windows whose metrics were not written are re-run; no other e-mail until then",
        )
    )
    links = {"Runs": f"{sender.dagster_url.rstrip('/')}/runs"}
    runbook = [(OUTAGE_KIND, INCIDENT_RUNBOOK[OUTAGE_KIND])]
    outage["told"] = tell_directly(
        context, sender, OUTAGE_TITLE, facts, links, failures, outage["since"], runbook
    )
    if outage["told"]:
        emit(context.log.info, INCIDENT, notice="opened", kind=OUTAGE_KIND, title=OUTAGE_TITLE)
    return outage


def _what(run: MonitoringRun) -> str:
    said = []
    if run.failure is not None:
        said.append(f"{run.job} failed at {run.failure.step}: {run.failure.error}")
    if run.failed:
        said.append(f"checks failed: {', '.join(sorted(run.failed))}")
    return "; ".join(said)


def _incidents(
    context: SensorEvaluationContext,
    sender: AlertSender,
    database: MetricsDatabase,
    store: ObjectStore,
    settings: MonitoringSettings,
    succeeded: set[str],
    now: datetime,
    failures: SendFailures,
) -> tuple[list[str], int, list[str], str | None]:
    """Resolve what was repaired, settle the failed-checks incidents, watch the other
    sensors, send the e-mails incidents are owed; returns (what was sent, how many to retry,
    the open incidents as the tick's message shows them, the database's error or None). A
    database outage postpones all of it to the next tick."""
    try:
        resolve_repaired(database, succeeded)
        settle_check_incidents(database, settings.incident_resolve_after_passing, now)
        watch_sensors(context, database, exclude=MONITORING_ALERT_SENSOR)
        watch_stuck_runs(
            context, database, WATCHED_JOBS, settings.stuck_run_seconds, sender.run_url
        )
        reminder = timedelta(seconds=settings.incident_reminder_seconds)
        alert = alert_context(sender, context.instance, settings, store.share_url)
        sent, failed = send_due_notices(context, database, sender, reminder, now, alert, failures)
        return sent, failed, [_shown(i) for i in database.incidents(status="open")], None
    except MonitoringDatabaseError as error:
        context.log.warning(f"{error}: incidents wait for the next tick")
        return [], 0, [], str(error)


def _shown(incident: Incident) -> str:
    span = incident.first_partition or ""
    if incident.last_partition and incident.last_partition != incident.first_partition:
        span += f" .. {incident.last_partition}"
    where = f", {span}" if span else ""
    return f"#{incident.id} {incident.key} ({incident.occurrences} occurrences{where})"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
