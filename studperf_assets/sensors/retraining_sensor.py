"""retraining_sensor: an incident of drift or a performance drop, enough new labels and the
cooldown passed start ``training_job`` on the data plus the labelled production rows."""

import json
from datetime import UTC, datetime

from dagster import RunRequest, SensorEvaluationContext, SensorResult, SkipReason

from studperf_assets.constants import MONITORING_ALERT_SENSOR, RETRAINING_CHECKS
from studperf_assets.lib.loop_events import RETRAINING, emit
from studperf_assets.resources.ground_truth import GroundTruth
from studperf_assets.resources.metrics_db import MetricsDatabase, MonitoringDatabaseError
from studperf_assets.resources.monitoring import AlertSender, MonitoringSettings
from studperf_assets.sensors.incidents import notice_for, watch_sensors
from studperf_assets.sensors.runs import monitoring_runs


def retraining_sensor(
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
    emit(context.log.info, RETRAINING, check=check, window=partition, new_labels=new_labels)
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
        for incident in watch_sensors(context, database, names={MONITORING_ALERT_SENSOR}):
            if incident.notified_at is None:
                email = notice_for(incident, "opened", sender.dagster_url)
                sender.send(email.subject, email.text(), email.html())
                database.mark_notified(incident.id, "opened")
    except Exception as exc:  # noqa: BLE001 - never stops retraining; retried next tick
        context.log.warning(f"watching {MONITORING_ALERT_SENSOR}: {exc}")
