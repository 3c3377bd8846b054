"""Names shared across the code location: asset groups, jobs, sensors and check names.

One place for each, so that a job's selection, a sensor's target and the checks an alert
reads cannot drift apart."""

TRAINING_GROUP = "training"
MONITORING_GROUP = "monitoring"

TRAINING_JOB = "training_job"
INCIDENT_TAG = "studperf/incident"  # on a training run: the incident it retrains for
MONITORING_JOB = "monitoring_job"
MONITORING_DAILY_JOB = "monitoring_daily_job"

PREDICTION_WINDOW_SENSOR = "prediction_window_sensor"
LATE_LABELS_SENSOR = "late_labels_sensor"
MONITORING_ALERT_SENSOR = "monitoring_alert_sensor"
RETRAINING_SENSOR = "retraining_sensor"
MONITORING_DAILY_SCHEDULE = "monitoring_daily_schedule"

PARTITION_TAG = "dagster/partition"  # Dagster's tag of a partitioned run
PRIORITY_TAG = "dagster/priority"  # the run queue starts higher first (QueuedRunCoordinator)
WINDOW_END_TAG = "studperf/window_end"
WINDOW_ROWS_TAG = "studperf/window_rows"
WINDOW_SMALL_TAG = "studperf/window_small"
# Set on a monitoring run once its window is judged: "passed" or "failed", and which of the
# drift and performance checks failed (the runs list shows tags, not check results).
VERDICT_TAG = "studperf/verdict"
FAILED_CHECKS_TAG = "studperf/failed_checks"

# The checks of a monitoring run that alerts report (grouped into incidents, and those that
# trigger retraining chosen, by ``lib.incidents.CHECK_GROUPS``).
MONITORING_CHECKS = (
    "batch_records",
    "batch_labels",
    "batch_data_quality",
    "data_drift",
    "prediction_drift",
    "performance",
)
