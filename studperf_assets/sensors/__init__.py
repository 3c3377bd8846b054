"""The code location's sensors, one module each, named after the sensor: closed monitoring
windows of the predictions archive (``prediction_window_sensor``, with ``window_retention``
and ``storage_retention``),
late labels (``late_labels_sensor``), alerts and incidents (``monitoring_alert_sensor``, with
``incidents`` and ``runs``) and retraining (``retraining_sensor``).

``build_sensors`` makes them with the deployment's default status (running wherever the
platform is deployed, unless a setting says otherwise) and tick interval.
"""

from typing import Any

from dagster import DefaultSensorStatus, SensorDefinition, sensor

from studperf_assets import constants
from studperf_assets.jobs import monitoring_job, training_job
from studperf_assets.sensors.late_labels_sensor import late_labels_sensor
from studperf_assets.sensors.monitoring_alert_sensor import monitoring_alert_sensor
from studperf_assets.sensors.prediction_window_sensor import prediction_window_sensor
from studperf_assets.sensors.retraining_sensor import retraining_sensor


def _summary(function: Any) -> str:
    """A sensor's description in the Dagster UI: the first paragraph of its docstring."""
    return " ".join(str(function.__doc__).split("\n\n")[0].split())


def build_sensors(running: bool = True, interval_seconds: int = 15) -> list[SensorDefinition]:
    """The four sensors, running by default (or stopped, for those who want that)."""
    status = DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED
    return [
        sensor(
            name=constants.PREDICTION_WINDOW_SENSOR,
            job=monitoring_job,
            minimum_interval_seconds=interval_seconds,
            default_status=status,
            description=_summary(prediction_window_sensor),
        )(prediction_window_sensor),
        sensor(
            name=constants.LATE_LABELS_SENSOR,
            job=monitoring_job,
            minimum_interval_seconds=interval_seconds * 2,
            default_status=status,
            description=_summary(late_labels_sensor),
        )(late_labels_sensor),
        sensor(
            name=constants.MONITORING_ALERT_SENSOR,
            minimum_interval_seconds=interval_seconds,
            default_status=status,
            description=_summary(monitoring_alert_sensor),
        )(monitoring_alert_sensor),
        sensor(
            name=constants.RETRAINING_SENSOR,
            job=training_job,
            minimum_interval_seconds=interval_seconds * 2,
            default_status=status,
            description=_summary(retraining_sensor),
        )(retraining_sensor),
    ]
