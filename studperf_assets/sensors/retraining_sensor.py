"""retraining_sensor: an incident of drift or a performance drop, enough new labels and the
cooldown passed start ``training_job`` on the data plus the labelled production rows, once
per incident, again (up to ``MAX_RETRAININGS``) when a retraining ended without a new
champion."""

import json
from datetime import UTC, datetime
from typing import Any

from dagster import (
    DagsterRunStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
)

from studperf_assets.constants import INCIDENT_TAG, MONITORING_ALERT_SENSOR, TRAINING_JOB
from studperf_assets.lib.incidents import CHECKS_FAILED, RETRAINING_GROUPS, check_incident_key
from studperf_assets.lib.loop_events import RETRAINING, emit
from studperf_assets.resources.ground_truth import GroundTruth
from studperf_assets.resources.metrics_db import MetricsDatabase, MonitoringDatabaseError
from studperf_assets.resources.monitoring import AlertSender, MonitoringSettings
from studperf_assets.sensors.incidents import alert_context, notice_for, watch_sensors

RETRAINING_KEYS = {check_incident_key(group) for group in RETRAINING_GROUPS}
# A retraining that failed or whose candidate the champion check refused is tried again for
# the same incident (with new labels and after the cooldown, like the first), at most this
# many times in all.
MAX_RETRAININGS = 3
ENDED_WITHOUT_A_MODEL = (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
ATTEMPT_TAG = "studperf/retraining_attempt"
KEPT_INCIDENTS = 100  # incidents the cursor remembers acting on (the run tag is the record)


def retraining_sensor(
    context: SensorEvaluationContext,
    ground_truth: GroundTruth,
    monitoring_settings: MonitoringSettings,
    alert_sender: AlertSender,
    metrics_database: MetricsDatabase,
) -> SensorResult | SkipReason:
    """An open drift or performance incident, enough newly labelled rows, and the cooldown
    passed: retrain on the data plus the labelled production rows, once per incident (its
    id is the run key), and again, under the same conditions, after a retraining that
    failed or whose candidate the champion check refused (up to ``MAX_RETRAININGS``). The
    new bundle still has to pass the champion check before it is promoted. Also watches
    the alert sensor, which cannot report its own failures."""
    _watch_the_watcher(context, alert_sender, metrics_database)
    state: dict[str, Any] = {"last_retrain": 0.0, "labels": 0, "requested": {}}
    state.update(json.loads(context.cursor) if context.cursor else {})
    requested = _requested(state)
    try:
        waiting = [
            (incident, attempt)
            for incident in metrics_database.incidents(status="open", kind=CHECKS_FAILED)
            if incident.key in RETRAINING_KEYS
            and (attempt := _next_attempt(context, incident.id, requested.get(incident.id, 0)))
        ]
    except MonitoringDatabaseError as error:
        return SkipReason(f"{error}; retraining waits for it")  # cursor unchanged
    if not waiting:
        return SkipReason("no open drift or performance incident without its retraining")
    now = datetime.now(UTC).timestamp()
    if now - state["last_retrain"] < monitoring_settings.retraining_cooldown_seconds:
        return SkipReason("retraining cooldown")  # cursor unchanged: the incident waits
    try:
        labels = ground_truth.usable_labels()
    except MonitoringDatabaseError as error:
        return SkipReason(f"{error}; retraining waits for it")  # cursor unchanged
    new_labels = labels - state["labels"]
    if new_labels < monitoring_settings.min_new_labels_for_retraining:
        needed = monitoring_settings.min_new_labels_for_retraining
        return SkipReason(f"{new_labels} new labelled rows; {needed} needed")
    incident, attempt = waiting[0]  # the oldest; the others wait for the cooldown
    checks = ",".join(incident.details.get("checks", [])) or incident.key
    partition = incident.last_partition or ""
    requested[incident.id] = attempt
    kept = sorted(requested)[-KEPT_INCIDENTS:]
    state = {
        "last_retrain": now,
        "labels": labels,
        "requested": {str(i): requested[i] for i in kept},
    }
    context.log.info(
        f"incident #{incident.id} ({incident.key}, {incident.occurrences} windows) retrains"
    )
    emit(context.log.info, RETRAINING, check=checks, window=partition, new_labels=new_labels)
    request = RunRequest(
        run_key=f"retrain-incident-{incident.id}" + (f"-{attempt}" if attempt > 1 else ""),
        run_config={"ops": {"raw_student_data": {"config": {"include_production_labels": True}}}},
        tags={
            "studperf/trigger": f"{checks}@{partition}",
            INCIDENT_TAG: str(incident.id),
            "studperf/new_labels": str(new_labels),
            ATTEMPT_TAG: str(attempt),
        },
    )
    return SensorResult(run_requests=[request], cursor=json.dumps(state))


def _requested(state: dict[str, Any]) -> dict[int, int]:
    """Incident -> retrainings requested for it, from the cursor (one from before retries
    lists the incidents it retrained once)."""
    found = {int(i): int(n) for i, n in dict(state.get("requested", {})).items()}
    for incident in state.get("retrained", []):
        found.setdefault(int(incident), 1)
    return found


def _next_attempt(context: SensorEvaluationContext, incident_id: int, requested: int) -> int:
    """The number of the incident's next retraining, or 0 for none now: one is on its way
    or succeeded, a requested one is not launched yet, or ``MAX_RETRAININGS`` ended without
    a new champion (failed, or refused by the champion check: a blocking check fails the
    run). The runs, found by their incident tag, are the record; the cursor only covers a
    request the daemon has not launched yet."""
    filters = RunsFilter(job_name=TRAINING_JOB, tags={INCIDENT_TAG: str(incident_id)})
    runs = context.instance.get_run_records(filters=filters)
    if len(runs) < requested:
        return 0  # requested, not launched yet
    if any(r.dagster_run.status not in ENDED_WITHOUT_A_MODEL for r in runs):
        return 0  # on its way, or it produced a champion
    return len(runs) + 1 if len(runs) < MAX_RETRAININGS else 0


def _watch_the_watcher(
    context: SensorEvaluationContext, sender: AlertSender, database: MetricsDatabase
) -> None:
    """If the alert sensor keeps failing, its incident is recorded and its first e-mail sent
    from here (reminders and the resolution follow from the alert sensor once it is back)."""
    try:
        for incident in watch_sensors(context, database, names={MONITORING_ALERT_SENSOR}):
            if incident.notified_at is None:
                email = notice_for(incident, "opened", alert_context(sender, context.instance))
                sender.send(email.subject, email.text(), email.html())
                database.mark_notified(incident.id, "opened")
    except Exception as exc:  # noqa: BLE001 - never stops retraining; retried next tick
        context.log.warning(f"watching {MONITORING_ALERT_SENSOR}: {exc}")
