"""Monitoring that never goes silent: failed runs and failing sensors become incidents, and
every incident reaches the on-call through the same SES path as drift, once.

Used by ``monitoring_alert_sensor`` (which watches every run and every other sensor) and by
``retraining_sensor`` (which watches the alert sensor itself). Dagster's ``run_failure_sensor``
was the first candidate; it moves its cursor past a run even when its function raised
(``run_status_sensor_definition.py``), so an e-mail that SES refused would be lost. Here a
failure is first recorded as an incident in the monitoring database, and e-mails are sent
from that record, so a refused send is retried on the next tick.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dagster import DagsterEventType, DagsterInstance, SensorEvaluationContext

from studperf_assets.constants import MONITORING_DAILY_JOB, PARTITION_TAG
from studperf_assets.lib.alert_email import CHECK_TITLES, TABLES, IncidentNotice, Table, sig
from studperf_assets.lib.incidents import (
    ALERTS_UNDELIVERED,
    CHECK_GROUPS,
    CHECKS_FAILED,
    RUN_FAILED,
    RUN_STUCK,
    SENSOR_FAILING,
    SENSOR_FAILURES_FOR_INCIDENT,
    Incident,
    check_incident_details,
    check_incident_key,
    first_line,
    notice_due,
    passes_to_resolve,
    run_failure_key,
    sensor_failure_key,
    stuck_run_key,
    window_order,
)
from studperf_assets.lib.loop_events import ALERT_NOT_SENT, INCIDENT, emit
from studperf_assets.resources.metrics_db import MetricsDatabase, MonitoringDatabaseError
from studperf_assets.resources.monitoring import AlertSender

MONITORING_JOB = "monitoring_job"


class AlertsUndelivered(RuntimeError):
    """E-mails refused for longer than the threshold: the alert sensor's tick fails."""


@dataclass
class SendFailures:
    """The e-mails a tick owed and could not send: how many, since when the oldest has been
    owed (a timestamp), and the last error's first line."""

    count: int = 0
    oldest: float | None = None
    error: str = ""

    def add(self, owed_since: float, error: Exception) -> None:
        self.count += 1
        self.oldest = owed_since if self.oldest is None else min(self.oldest, owed_since)
        self.error = first_line(f"{type(error).__name__}: {error}")


def escalate_undelivered(
    context: SensorEvaluationContext,
    database: MetricsDatabase,
    failures: SendFailures,
    threshold_seconds: float,
    advanced: bool,
) -> None:
    """E-mails refused for ``threshold_seconds`` or more are an incident (resolved by a tick
    that sent everything it owed), logged at ERROR as "alert not sent: ...", and fail the
    tick (``AlertsUndelivered``) unless the tick moved its cursor (the next one fails
    then, so that no progress is lost with a failed tick)."""
    if not failures.count or failures.oldest is None:
        with contextlib.suppress(MonitoringDatabaseError):  # else by a later tick
            database.resolve_incidents(ALERTS_UNDELIVERED)
        return
    age = clock().timestamp() - failures.oldest
    if age < threshold_seconds:
        return
    plural = "s" if failures.count != 1 else ""
    message = (
        f"alert not sent: {failures.count} e-mail{plural} owed, the oldest for {age:.0f} s: "
        f"{failures.error}"
    )
    emit(
        context.log.error,
        ALERT_NOT_SENT,
        owed=failures.count,
        oldest_seconds=round(age),
        error=failures.error,
    )
    try:
        database.record_occurrence(
            ALERTS_UNDELIVERED,
            ALERTS_UNDELIVERED,
            f"alerts not sent: {failures.count} e-mail{plural} refused for over "
            f"{int(threshold_seconds)} s",
            None,
            {"error": failures.error, "owed": failures.count},
        )
    except MonitoringDatabaseError as error:
        context.log.error(f"{message}; not recorded: {error}")
    if not advanced:
        raise AlertsUndelivered(message)


def clock() -> datetime:
    """Now, as the incidents and ``monitoring_alert_sensor`` see it: one function, because a
    sensor is called by Dagster with its context alone (no parameter could carry a clock);
    a test moves time for both with pytest's ``monkeypatch``."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class RunFailure:
    """Where a run failed and why: the first failed step (or "run", when the run failed
    outside any step: a crashed worker, a launch failure) and its root error's first line."""

    step: str
    error: str


def run_failure(instance: DagsterInstance, run_id: str) -> RunFailure:
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        data = event.step_failure_data
        error = data.error if data else None
        while error is not None and error.cause is not None:
            error = error.cause  # the user's error, not Dagster's wrapper
        return RunFailure(event.step_key, first_line(error_text(error) if error else "unknown"))
    step = running_step(instance, run_id) or "run"
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE):
        message = first_line(entry.message or "run failed")
        if message.startswith(MARKED_FROM_OUTSIDE):  # the worker vanished (SIGKILL, OOM)
            message = f"the run worker process died ({message.rstrip('.')})"
        return RunFailure(step, message)
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.RUN_CANCELED):
        return RunFailure(step, f"canceled: {first_line(entry.message or 'run canceled')}")
    return RunFailure(step, "run failed before any step started")


# What Dagster says of a run whose worker died without reporting (killed, out of memory).
MARKED_FROM_OUTSIDE = "This run has been marked as failed from outside the execution context"


def running_step(instance: DagsterInstance, run_id: str) -> str | None:
    """The step a run was in when it stopped: the last started step that neither
    succeeded nor failed (None: none was running)."""
    ended: set[str] = set()
    started: list[str] = []
    kinds = {
        DagsterEventType.STEP_START,
        DagsterEventType.STEP_SUCCESS,
        DagsterEventType.STEP_FAILURE,
        DagsterEventType.STEP_SKIPPED,
    }
    for entry in instance.all_logs(run_id, of_type=kinds):
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            started.append(event.step_key)
        else:
            ended.add(event.step_key)
    running = [step for step in started if step not in ended]
    return running[-1] if running else None


def error_text(error: Any) -> str:
    """An error as a reader wants it: ``KeyError: 1``, not ``builtins.KeyError: 1``; a
    ``Failure``'s own description, which already says what failed."""
    message, name = str(error.message), str(getattr(error, "cls_name", "") or "")
    head, _, rest = message.partition(": ")
    if name and head.rsplit(".", 1)[-1] == name:
        return rest if name == "Failure" else f"{name}: {rest}"
    return message


def record_failed_run(
    database: MetricsDatabase,
    job: str,
    run_id: str,
    partition: str,
    failure: RunFailure,
    run_url: str,
) -> Incident:
    """The failed run as an occurrence of its incident, and (for a monitoring window) the
    window's status: failed, with the step and the error, never just missing."""
    if job == MONITORING_JOB and partition:
        database.record_status(partition, "failed", run_id, failure.step, failure.error)
    where = f" ({partition})" if partition else ""
    return database.record_occurrence(
        run_failure_key(job, failure.step, failure.error),
        RUN_FAILED,
        f"{job} failed at {failure.step}{where}: {failure.error}",
        partition or None,
        {
            "job": job,
            "step": failure.step,
            "error": failure.error,
            "last_run_id": run_id,
            "last_run_url": run_url,
        },
    )


def resolve_repaired(database: MetricsDatabase, succeeded_jobs: set[str]) -> list[Incident]:
    """Resolve run-failure incidents that no longer hold: a training incident once a later
    training run succeeded; a daily rollup incident once a later rollup run succeeded and
    the last day it failed for is rolled up; a monitoring incident once none of its windows
    is still failed (each was monitored again since)."""
    resolved: list[Incident] = []
    if "training_job" in succeeded_jobs:
        resolved += database.resolve_incidents(f"{RUN_FAILED}:training_job:")
    if MONITORING_DAILY_JOB in succeeded_jobs:
        for incident in database.incidents(status="open", kind=RUN_FAILED):
            if incident.details.get("job") == MONITORING_DAILY_JOB and _rolled_up(
                database, incident.last_partition
            ):
                resolved += database.resolve_incidents(incident.key)
    still_failed = {
        run_failure_key(MONITORING_JOB, row["step"] or "run", row["error"] or "")
        for row in database.statuses().values()
        if row["status"] == "failed"
    }
    for incident in database.incidents(status="open", kind=RUN_FAILED):
        if incident.details.get("job") == MONITORING_JOB and incident.key not in still_failed:
            resolved += database.resolve_incidents(incident.key)
    return resolved


def _rolled_up(database: MetricsDatabase, day: str | None) -> bool:
    try:
        return bool(database.rolled_up_days([date.fromisoformat(day or "")]))
    except ValueError:  # a run without a day's partition: its next success will do
        return True


UNFINISHED = ("NOT_STARTED", "QUEUED", "STARTING", "STARTED", "CANCELING")


def watch_stuck_runs(
    context: SensorEvaluationContext,
    database: MetricsDatabase,
    jobs: tuple[str, ...],
    threshold_seconds: float,
    run_url: Any,
) -> list[Incident]:
    """A run of ``jobs`` not finished ``threshold_seconds`` after it was queued (or
    started) is an incident, one per job and status; resolved once none is stuck so. The
    daemon's run monitoring ends hung runs; this tells the on-call when it does not (two
    hung runs hold both run slots, and no other run ever starts)."""
    from dagster import DagsterRunStatus, RunsFilter

    now = datetime.now(UTC).timestamp()
    records = context.instance.get_run_records(
        filters=RunsFilter(job_name=None, statuses=[DagsterRunStatus(s) for s in UNFINISHED]),
        limit=500,
    )
    stuck: dict[str, Incident] = {}
    for record in sorted(records, key=lambda r: r.create_timestamp.timestamp()):
        run = record.dagster_run
        since = record.start_time or record.create_timestamp.timestamp()
        if run.job_name not in jobs or now - since < threshold_seconds:
            continue
        status, partition = run.status.value, run.tags.get(PARTITION_TAG, "")
        minutes = int((now - since) // 60)
        stuck[stuck_run_key(run.job_name, status)] = database.record_occurrence(
            stuck_run_key(run.job_name, status),
            RUN_STUCK,
            f"{run.job_name} run stuck in {status} for over {int(threshold_seconds)} s",
            partition or None,
            {
                "job": run.job_name,
                "status": status,
                "error": f"run {run.run_id} {status.lower()} for {minutes} min, not finished",
                "last_run_id": run.run_id,
                "last_run_url": run_url(run.run_id),
            },
        )
    for incident in database.incidents(status="open", kind=RUN_STUCK):
        if incident.key not in stuck:
            database.resolve_incidents(incident.key)
    return list(stuck.values())


def watch_sensors(
    context: SensorEvaluationContext,
    database: MetricsDatabase,
    names: set[str] | None = None,
    exclude: str = "",
) -> list[Incident]:
    """A sensor whose last ``SENSOR_FAILURES_FOR_INCIDENT`` ticks all failed is an incident
    (named with its error's first line); its next good tick resolves it. Watches the sensors
    in ``names`` (all but ``exclude`` when None). Returns the incidents now failing."""
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import TickStatus

    failing = []
    for state in context.instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        name = state.instigator_name
        if name == exclude or (names is not None and name not in names):
            continue
        ticks = context.instance.get_ticks(
            state.instigator_origin_id, state.selector_id, limit=SENSOR_FAILURES_FOR_INCIDENT
        )
        if not ticks:
            continue
        tick, key = ticks[0], sensor_failure_key(name)
        if tick.status == TickStatus.FAILURE:
            if len(ticks) == SENSOR_FAILURES_FOR_INCIDENT and all(
                t.status == TickStatus.FAILURE for t in ticks
            ):
                error = first_line(error_text(_root(tick.error)) if tick.error else "tick failed")
                failing.append(
                    database.record_occurrence(
                        key,
                        SENSOR_FAILING,
                        f"sensor {name} keeps failing: {error}",
                        None,
                        {"sensor": name, "error": error, "failed_ticks": tick.failure_count},
                    )
                )
        elif tick.status in (TickStatus.SUCCESS, TickStatus.SKIPPED):
            database.resolve_incidents(key)
    return failing


def _root(error: Any) -> Any:
    while error.cause is not None:
        error = error.cause
    return error


def notice_for(
    incident: Incident,
    notice: str,
    dagster_url: str,
    share: Callable[[str], str] | None = None,
) -> IncidentNotice:
    """The e-mail of an incident: what failed, where, since when, how often."""
    if incident.kind == CHECKS_FAILED:
        return _checks_notice(incident, notice, dagster_url, share)
    d = incident.details
    facts = [
        ("what", incident.kind.replace("_", " ")),
        ("since", incident.opened_at.isoformat(timespec="seconds")),
        ("occurrences", str(incident.occurrences)),
    ]
    facts += [(k, str(d[k])) for k in ("job", "step", "sensor") if d.get(k)]
    if incident.first_partition:
        windows = incident.first_partition
        if incident.last_partition and incident.last_partition != incident.first_partition:
            windows = f"{incident.first_partition} .. {incident.last_partition}"
        facts.append(("window(s)", windows))
    facts.append(("error", str(d.get("error", ""))))
    if notice == "resolved" and incident.resolved_at:
        facts.append(("resolved", incident.resolved_at.isoformat(timespec="seconds")))
    links = {
        ("Stuck run" if incident.kind == RUN_STUCK else "Last failed run"): str(
            d.get("last_run_url", "")
        )
    }
    if incident.kind == SENSOR_FAILING:
        links = {"Sensors": f"{dagster_url.rstrip('/')}/automation"}
    return IncidentNotice(notice, incident.title, facts, links)


def _checks_notice(
    incident: Incident, notice: str, dagster_url: str, share: Callable[[str], str] | None
) -> IncidentNotice:
    """A failed-checks incident's e-mail: the checks, the windows so far, the drifted
    features ranked by score, the last failing window's figures, links to its run and
    report."""
    d = incident.details
    count = int(d.get("windows", incident.occurrences))
    span = incident.first_partition or ""
    if incident.last_partition and incident.last_partition != incident.first_partition:
        span = f"{incident.first_partition} .. {incident.last_partition}"
    facts = [
        ("what", f"checks failed ({d.get('group', '')})"),
        ("failed checks", ", ".join(d.get("checks", []))),
        ("since", incident.opened_at.isoformat(timespec="seconds")),
        ("window(s)", f"{span} ({count} failing)"),
    ]
    if count > 1:
        facts.append(("failing windows", ", ".join(d.get("listed_windows", []))))
    if d.get("model_version"):
        facts.append(("model version", str(d["model_version"])))
    last = dict(d.get("last_failed", {}))
    for check, measure, bound in (
        ("data_drift", "drift_share", "threshold"),
        ("prediction_drift", "prediction_drift", "threshold"),
        ("performance", "f1_macro", "floor"),
    ):
        if check in last and measure in last[check]:
            figure = f"{sig(last[check][measure])} (threshold {sig(last[check].get(bound))})"
            facts.append((f"{measure} in {d.get('last_partition', '')}", figure))
    if notice == "resolved" and incident.resolved_at:
        facts.append(("resolved", incident.resolved_at.isoformat(timespec="seconds")))
        through = (
            f"{d.get('passing_windows')} consecutive windows, through {d.get('resolved_through')}"
        )
        facts.append(("passed", through))
    tables = []
    features = d.get("drifted_features", [])
    if features:
        thresholds = d.get("feature_thresholds", {})
        rows: list[tuple[str, ...]] = [
            (str(f), sig(score), sig(thresholds.get(f, ""))) for f, score in features
        ]
        title = "Drifted features, highest score first"
        tables.append((title, Table(("feature", "highest score", "threshold"), rows)))
    for check in ("batch_records", "batch_labels", "batch_data_quality"):
        if check in last:  # which records, files or values: named, so the on-call can act
            title = f"{CHECK_TITLES.get(check, check)} in {d.get('last_partition', '')}"
            tables.append((title, TABLES[check](dict(last[check]))))
    links = {"Last failed run": f"{dagster_url.rstrip('/')}/runs/{d.get('last_run_id', '')}"}
    if share is not None and d.get("report_key"):
        links["Drift report"] = share(str(d["report_key"]))
    return IncidentNotice(notice, incident.title, facts, links, tables)


def check_incident_title(group: str, windows: list[tuple[str, str, dict[str, Any]]]) -> str:
    checks = sorted({c for _, _, failed in windows for c in failed})
    first = min((w[0] for w in windows), key=window_order)
    return f"{group} incident: {', '.join(checks)} failed on {first}"


def settle_check_incidents(
    database: MetricsDatabase, resolve_after: int, now: datetime
) -> list[Incident]:
    """Failed checks as incidents, one open incident per group of checks
    (``lib.incidents.CHECK_GROUPS``). A failing window that belongs to no incident joins
    the group's open incident, or opens one. An incident that was told (its OPEN e-mail
    sent) is resolved once the ``resolve_after`` windows after the group's latest failing
    window all passed. Everything is computed from the windows' verdicts, so settling
    twice is settling once. Returns the open incidents."""
    open_now = {i.key: i for i in database.incidents(status="open", kind=CHECKS_FAILED)}
    still_open = []
    for group in sorted(set(CHECK_GROUPS.values())):
        key = check_incident_key(group)
        incident = open_now.get(key)
        new = database.unassigned_failures(group)
        if new:
            if incident is None:
                first = min((w[0] for w in new), key=window_order)
                title = check_incident_title(group, new)
                incident = database.open_incident(key, CHECKS_FAILED, title, first, now)
            database.assign_windows(incident.id, group, [w[0] for w in new])
        if incident is None:
            continue
        windows = database.incident_windows(incident.id)
        if windows:
            details = {**incident.details, **check_incident_details(group, windows)}
            partitions = sorted((w[0] for w in windows), key=window_order)
            if details != incident.details or new:
                incident = database.update_incident(
                    incident.id, partitions[0], partitions[-1], len(windows), details,
                    last_seen_at=now if new else None,
                )  # fmt: skip
        if incident.notified_at is not None:  # never resolved before it was told
            start = database.latest_failure(group) or incident.last_partition or ""
            after = database.verdicts_after(group, start, resolve_after)
            through = passes_to_resolve(after, resolve_after)
            if through is not None:
                resolved = {"resolved_through": through, "passing_windows": resolve_after}
                database.resolve_incident(incident.id, now, resolved)
                continue
        still_open.append(incident)
    return still_open


def send_due_notices(
    context: SensorEvaluationContext,
    database: MetricsDatabase,
    sender: AlertSender,
    reminder: timedelta,
    now: datetime | None = None,
    share: Callable[[str], str] | None = None,
    failures: SendFailures | None = None,
) -> tuple[int, int]:
    """Send every e-mail incidents are owed (opened, reminder, resolved); returns (sent,
    failed). A failed send leaves the incident as it was: the next tick tries again."""
    sent = failed = 0
    now = now or clock()
    for incident in database.unsettled_incidents():
        notice = notice_due(incident, now, reminder)
        if notice is None:
            continue
        email = notice_for(incident, notice, sender.dagster_url, share)
        try:
            sender.send(email.subject, email.text(), email.html())
        except Exception as exc:  # noqa: BLE001 - retried next tick
            context.log.error(f"incident e-mail not sent, will retry: {email.subject}: {exc}")
            failed += 1
            if failures is not None:
                owed = incident.opened_at if notice == "opened" else incident.last_seen_at
                failures.add(owed.timestamp(), exc)
            continue
        database.mark_notified(incident.id, notice, now)
        emit(context.log.info, INCIDENT, notice=notice, kind=incident.kind, title=incident.title)
        sent += 1
    return sent, failed


def tell_directly(
    context: SensorEvaluationContext,
    sender: AlertSender,
    title: str,
    facts: list[tuple[str, str]],
    links: dict[str, str] | None = None,
    failures: SendFailures | None = None,
    owed_since: float = 0.0,
) -> bool:
    """An e-mail with no incident behind it (the monitoring database being down, there is
    none to record): sent at once, the caller keeps it to one. True if it went out."""
    email = IncidentNotice("opened", title, facts, links or {})
    try:
        sender.send(email.subject, email.text(), email.html())
    except Exception as exc:  # noqa: BLE001 - retried next tick
        context.log.error(f"e-mail not sent, will retry: {email.subject}: {exc}")
        if failures is not None:
            failures.add(owed_since or clock().timestamp(), exc)
        return False
    return True
