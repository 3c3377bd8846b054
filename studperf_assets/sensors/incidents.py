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
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dagster import DagsterEventType, DagsterInstance, SensorEvaluationContext

from studperf_assets.constants import (
    INCIDENT_TAG,
    MONITORING_DAILY_JOB,
    PARTITION_TAG,
    TRAINING_JOB,
)
from studperf_assets.lib import alert_links
from studperf_assets.lib.alert_email import (
    CHECK_RUNBOOK,
    CHECK_TITLES,
    INCIDENT_RUNBOOK,
    NOTICE_WORDS,
    TABLES,
    IncidentNotice,
    Table,
    sig,
)
from studperf_assets.lib.incidents import (
    ALERTS_UNDELIVERED,
    CHECK_GROUPS,
    CHECKS_FAILED,
    RETRAINING_GROUPS,
    RUN_FAILED,
    RUN_STUCK,
    SENSOR_FAILING,
    SENSOR_FAILURES_FOR_INCIDENT,
    Incident,
    check_incident_details,
    check_incident_key,
    first_line,
    incident_severity,
    notice_due,
    passes_to_resolve,
    run_failure_key,
    sensor_failure_key,
    stuck_run_key,
    window_order,
)
from studperf_assets.lib.loop_events import ALERT_NOT_SENT, INCIDENT, emit
from studperf_assets.resources.metrics_db import MetricsDatabase, MonitoringDatabaseError
from studperf_assets.resources.monitoring import AlertSender, MonitoringSettings

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
        text = error_text(error) if error else "unknown"
        if error is not None and error.cls_name == "DagsterAssetCheckFailedError":
            # its first line ends in "...with ERROR severity:": the checks and why are below
            text = failed_checks_text(instance, run_id) or " ".join(text.split())
        return RunFailure(event.step_key, first_line(text))
    step = running_step(instance, run_id) or "run"
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE):
        message = first_line(entry.message or "run failed")
        if message.startswith(MARKED_FROM_OUTSIDE):  # the worker vanished (SIGKILL, OOM)
            message = f"the run worker process died ({message.rstrip('.')})"
        return RunFailure(step, message)
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.RUN_CANCELED):
        return RunFailure(step, f"canceled: {first_line(entry.message or 'run canceled')}")
    return RunFailure(step, "run failed before any step started")


def failed_checks_text(instance: DagsterInstance, run_id: str) -> str:
    """The run's failed checks, each with its verdict (``verdict`` or ``error`` in its
    metadata): what a blocking check that stopped the run decided, and why."""
    said = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        event = entry.dagster_event
        data = event.asset_check_evaluation_data if event else None
        if data is None or data.passed:
            continue
        why = data.metadata.get("verdict") or data.metadata.get("error")
        said.append(f"{data.check_name} failed" + (f": {why.value}" if why else ""))
    return "; ".join(said)


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


@dataclass
class AlertContext:
    """What an incident's e-mail says beyond the incident itself: the UIs' base URLs (links
    that open from a laptop), a shared link to a stored report, the Evidently workspace (its
    project's ID), the Dagster instance (the retraining run, the model's MLflow version), and
    the retraining rules (what "not started yet" waits for)."""

    dagster_url: str
    evidently_url: str = ""
    mlflow_url: str = ""
    evidently_workspace: str = ""
    share: Callable[[str], str] | None = None
    instance: DagsterInstance | None = None
    min_new_labels: int = 0
    cooldown_seconds: int = 0
    resolve_after: int = 0


def alert_context(
    sender: AlertSender,
    instance: DagsterInstance | None = None,
    settings: MonitoringSettings | None = None,
    share: Callable[[str], str] | None = None,
) -> AlertContext:
    settings = settings or MonitoringSettings()
    return AlertContext(
        dagster_url=sender.dagster_url,
        evidently_url=sender.evidently_url,
        mlflow_url=sender.mlflow_url,
        evidently_workspace=settings.evidently_workspace,
        share=share,
        instance=instance,
        min_new_labels=settings.min_new_labels_for_retraining,
        cooldown_seconds=settings.retraining_cooldown_seconds,
        resolve_after=settings.incident_resolve_after_passing,
    )


def notice_for(incident: Incident, notice: str, alert: AlertContext) -> IncidentNotice:
    """The e-mail of an incident: how severe, what failed, where, since when, how often,
    what the platform does about it and what to check."""
    if incident.kind == CHECKS_FAILED:
        return _checks_notice(incident, notice, alert)
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
        links = {"Sensors": alert_links.dagster_sensors(alert.dagster_url)}
    job = str(d.get("job", ""))
    runbook_key = f"{incident.kind}:{job}" if f"{incident.kind}:{job}" in INCIDENT_RUNBOOK else ""
    runbook = INCIDENT_RUNBOOK.get(runbook_key or incident.kind, "")
    doing = []
    if incident.kind == RUN_FAILED and job == TRAINING_JOB:
        doing.append("the champion keeps serving: a model is promoted only by a training run "
                     "that succeeds and beats it")  # fmt: skip
    elif incident.kind == RUN_FAILED and job == MONITORING_JOB:
        doing.append("later windows are monitored as usual; the failed window(s) are not "
                     "monitored until they are materialized again")  # fmt: skip
    return IncidentNotice(
        notice,
        incident.title,
        facts,
        links,
        severity=incident_severity(incident),
        doing=doing,
        runbook=[(job or incident.kind, runbook)] if runbook else [],
    )


def _checks_notice(incident: Incident, notice: str, alert: AlertContext) -> IncidentNotice:
    """A failed-checks incident's e-mail: the checks, the windows so far, the drifted
    features ranked by score, the last failing window's figures, what the platform does
    (retraining, with its run), what to check per check, and links to the window's run, its
    Evidently report, the dashboard and the model that served it."""
    d = incident.details
    count = int(d.get("windows", incident.occurrences))
    span = incident.first_partition or ""
    if incident.last_partition and incident.last_partition != incident.first_partition:
        span = f"{incident.first_partition} .. {incident.last_partition}"
    facts = [
        ("what", f"checks failed ({d.get('group', '')})"),
        ("failed checks", ", ".join(d.get("checks", []))),
        ("since", f"{incident.opened_at.isoformat(timespec='seconds')} (incident opened)"),
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
    links = {
        "Dagster run of the last failing window": alert_links.dagster_run(
            alert.dagster_url, str(d.get("last_run_id", ""))
        )
    }
    doing = _doing(incident, notice, alert, links)
    links.update(_evidently_links(incident, alert))
    model = _mlflow_link(alert, str(d.get("model_version", "")))
    if model:
        links["MLflow model that served it"] = model
    if alert.share is not None and d.get("report_key"):
        with contextlib.suppress(Exception):  # a link not made is no reason to hold the e-mail
            links["Drift report (HTML)"] = alert.share(str(d["report_key"]))
    runbook = [(c, CHECK_RUNBOOK[c]) for c in d.get("checks", []) if c in CHECK_RUNBOOK]
    return IncidentNotice(
        notice,
        incident.title,
        facts,
        links,
        tables,
        severity=incident_severity(incident),
        doing=doing,
        runbook=runbook,
    )


def _doing(
    incident: Incident, notice: str, alert: AlertContext, links: dict[str, str]
) -> list[str]:
    """What the platform does about failed checks: retraining (started, with its run, or
    what it waits for) for drift and performance; nothing automatic for the data checks."""
    group = str(incident.details.get("group", ""))
    resolved = notice == "resolved"
    passing = (
        f"each new window is checked again; {alert.resolve_after or 'enough'} passing windows "
        "in a row resolve this"
    )
    if group not in RETRAINING_GROUPS:
        automatic = f"no automatic action: retraining does not repair {group.replace('_', ' ')}"
        return [automatic] if resolved else [automatic, passing]
    run = _retraining_run(alert.instance, incident.id)
    if run is not None:
        started = datetime.fromtimestamp(run.create_timestamp.timestamp(), UTC)
        links["Retraining run"] = alert_links.dagster_run(alert.dagster_url, run.dagster_run.run_id)
        said = [
            f"retraining started {started.isoformat(timespec='seconds')} for this incident: "
            f"{TRAINING_JOB} run {run.dagster_run.run_id[:8]}, "
            f"{run.dagster_run.status.value.lower()}",
            "its model replaces the champion only if it beats it (the champion check)",
        ]
        return said if resolved else [*said, passing]
    if resolved:
        return ["no retraining was started for this incident"]
    links["Retraining runs for this incident"] = alert_links.dagster_runs_tagged(
        alert.dagster_url, INCIDENT_TAG, str(incident.id)
    )
    cooldown = (
        f", at most one per {alert.cooldown_seconds // 60} min" if alert.cooldown_seconds else ""
    )
    return [
        f"retraining not started yet: retraining_sensor starts {TRAINING_JOB} for this "
        f"incident once {alert.min_new_labels} newly labelled rows are in{cooldown} "
        "(the link below lists it once it has)",
        passing,
    ]


def _retraining_run(instance: DagsterInstance | None, incident_id: int) -> Any:
    """The newest training run requested for the incident (``INCIDENT_TAG``), or None."""
    if instance is None:
        return None
    from dagster import RunsFilter

    filters = RunsFilter(job_name=TRAINING_JOB, tags={INCIDENT_TAG: str(incident_id)})
    records = instance.get_run_records(filters=filters, limit=1)
    return records[0] if records else None


def _evidently_links(incident: Incident, alert: AlertContext) -> dict[str, str]:
    """The last failing window's report in the Evidently UI (drift, or quality for the
    performance check) and the project's dashboard; the UI's root if the project is not
    found."""
    if not alert.evidently_url:
        return {}
    from studperf_assets.resources.evidently_workspace import (
        find_project_id,
        snapshot_id,
        snapshot_name,
    )

    try:
        project = find_project_id(alert.evidently_workspace) if alert.evidently_workspace else ""
    except Exception:  # noqa: BLE001 - a workspace being written: the dashboard link still helps
        project = ""
    links = {"Evidently dashboard": alert_links.evidently_project(alert.evidently_url, project)}
    group = str(incident.details.get("group", ""))
    window = str(incident.details.get("last_partition", ""))
    if project and window and group in RETRAINING_GROUPS:
        kind = "quality" if group == "performance" else "drift"
        snapshot = str(snapshot_id(snapshot_name(window, kind)))
        links[f"Evidently {kind} report of {window}"] = alert_links.evidently_snapshot(
            alert.evidently_url, project, snapshot
        )
    return links


_REGISTERED = re.compile(r"^models:/(?P<name>[^/]+)/(?P<version>\d+)$")


def _mlflow_link(alert: AlertContext, bundle_version: str) -> str:
    """The MLflow model version registered with the bundle that served the window (read from
    ``model_bundle``'s materializations); the registered model's page if not found."""
    if not alert.mlflow_url or not bundle_version:
        return ""
    from studperf_assets.lib.trained import MODEL_NAME

    if alert.instance is not None:
        from dagster import AssetKey

        with contextlib.suppress(Exception):  # no version found: the model's page will do
            result = alert.instance.fetch_materializations(AssetKey("model_bundle"), limit=200)
            for record in result.records:
                materialization = record.asset_materialization
                metadata = materialization.metadata if materialization else {}
                version = metadata.get("version")
                registered = metadata.get("mlflow_model")
                if version is None or registered is None or version.value != bundle_version:
                    continue
                found = _REGISTERED.match(str(registered.value))
                if found:
                    return alert_links.mlflow_model(
                        alert.mlflow_url, found["name"], found["version"]
                    )
    return alert_links.mlflow_model(alert.mlflow_url, MODEL_NAME)


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
    alert: AlertContext | None = None,
    failures: SendFailures | None = None,
) -> tuple[list[str], int]:
    """Send every e-mail incidents are owed (opened, reminder, resolved); returns what was
    sent (``sent_line``: for the tick's message) and how many failed. A failed send leaves
    the incident as it was: the next tick tries again."""
    sent: list[str] = []
    failed = 0
    now = now or clock()
    alert = alert or alert_context(sender, context.instance)
    for incident in database.unsettled_incidents():
        notice = notice_due(incident, now, reminder)
        if notice is None:
            continue
        email = notice_for(incident, notice, alert)
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
        sent.append(sent_line(notice, incident))
    return sent, failed


def sent_line(notice: str, incident: Incident) -> str:
    """One sent e-mail as the alert sensor's tick names it: ``OPEN #12 checks:drift WARN
    (data_drift, prediction_drift)``."""
    checks = ", ".join(incident.details.get("checks", []))
    what = f" ({checks})" if checks else ""
    severity = incident_severity(incident)
    return f"{NOTICE_WORDS[notice]} #{incident.id} {incident.key} {severity}{what}"


def tell_directly(
    context: SensorEvaluationContext,
    sender: AlertSender,
    title: str,
    facts: list[tuple[str, str]],
    links: dict[str, str] | None = None,
    failures: SendFailures | None = None,
    owed_since: float = 0.0,
    runbook: list[tuple[str, str]] | None = None,
) -> bool:
    """An e-mail with no incident behind it (the monitoring database being down, there is
    none to record): sent at once, the caller keeps it to one. True if it went out."""
    email = IncidentNotice("opened", title, facts, links or {}, runbook=runbook or [])
    try:
        sender.send(email.subject, email.text(), email.html())
    except Exception as exc:  # noqa: BLE001 - retried next tick
        context.log.error(f"e-mail not sent, will retry: {email.subject}: {exc}")
        if failures is not None:
            failures.add(owed_since or clock().timestamp(), exc)
        return False
    return True
