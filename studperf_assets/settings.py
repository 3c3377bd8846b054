"""Environment-driven defaults: everything runs embedded under ``STUDPERF_HOME``.

| variable | default | meaning |
| --- | --- | --- |
| STUDPERF_HOME | ./.studperf | working folder: Dagster, MLflow, model store, IO |
| STUDPERF_MODEL_STORE | (local folder) | ``s3://bucket/prefix`` switches to the S3 store |
| STUDPERF_DATA_SOURCE | (bundled CSV) | raw CSV path or ``s3://`` URI |
| MLFLOW_TRACKING_URI | sqlite:///$STUDPERF_HOME/mlflow.db | MLflow backend |
| STUDPERF_MLFLOW_EXPERIMENT | studperf | MLflow experiment |
| STUDPERF_MONITORING_STORE | $STUDPERF_HOME/monitoring | batches, reports, labels |
| STUDPERF_METRICS_DB_URL | sqlite:///$STUDPERF_HOME/monitoring.db | metrics, sent alerts |
| STUDPERF_PREDICTIONS_STREAM | studperf-predictions | the Lambda's output |
| STUDPERF_ALERT_SENDER / _RECIPIENTS | example.org | SES alert e-mail |
| STUDPERF_SENSORS | running | ``stopped`` deploys the sensors stopped |
| STUDPERF_SENSOR_INTERVAL | 15 | seconds between sensor ticks (late labels, retraining: twice) |
| STUDPERF_AWS_PORT, _UI_PORT, _EVIDENTLY_PORT | 4566, 3000, 8085 | ``studperf up``'s ports |
"""

from __future__ import annotations

import os
from pathlib import Path

# Every variable studperf_assets reads (the Lambda's are in lambda_service.handler).
ENVIRONMENT_VARIABLES = (
    "STUDPERF_HOME",
    "STUDPERF_MODEL_STORE",
    "STUDPERF_DATA_SOURCE",
    "MLFLOW_TRACKING_URI",
    "STUDPERF_MLFLOW_EXPERIMENT",
    "DAGSTER_HOME",
    "STUDPERF_DAGSTER_STORAGE",
    "STUDPERF_DAGSTER_PG_URL",
    "STUDPERF_MONITORING_STORE",
    "STUDPERF_METRICS_DB_URL",
    "STUDPERF_PREDICTIONS_STREAM",
    "STUDPERF_ALERT_SENDER",
    "STUDPERF_ALERT_RECIPIENTS",
    "STUDPERF_SENSORS",
    "STUDPERF_SENSOR_INTERVAL",
    # studperf up (studperf_assets.stack)
    "STUDPERF_AWS_PORT",
    "STUDPERF_UI_PORT",
    "STUDPERF_EVIDENTLY_PORT",
)


def home() -> Path:
    return Path(os.environ.get("STUDPERF_HOME", ".studperf")).resolve()


def model_store_uri() -> str:
    return os.environ.get("STUDPERF_MODEL_STORE", "")


def data_source() -> str:
    return os.environ.get("STUDPERF_DATA_SOURCE", "")


def mlflow_tracking_uri(base: Path | None = None) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(base or home()) / 'mlflow.db'}"


def mlflow_experiment() -> str:
    return os.environ.get("STUDPERF_MLFLOW_EXPERIMENT", "studperf")


def monitoring_store_uri() -> str:
    return os.environ.get("STUDPERF_MONITORING_STORE", "")


def metrics_db_url(base: Path | None = None) -> str:
    return (
        os.environ.get("STUDPERF_METRICS_DB_URL")
        or f"sqlite:///{(base or home()) / 'monitoring.db'}"
    )


def predictions_stream() -> str:
    return os.environ.get("STUDPERF_PREDICTIONS_STREAM", "studperf-predictions")


def alert_sender() -> str:
    return os.environ.get("STUDPERF_ALERT_SENDER", "studperf-alerts@example.org")


def alert_recipients() -> list[str]:
    raw = os.environ.get("STUDPERF_ALERT_RECIPIENTS", "ml-oncall@example.org")
    return [r.strip() for r in raw.split(",") if r.strip()]


def sensors_running() -> bool:
    value = os.environ.get("STUDPERF_SENSORS", "running").strip().lower()
    if value not in ("running", "stopped"):
        raise ValueError(f"STUDPERF_SENSORS must be 'running' or 'stopped', not {value!r}")
    return value == "running"


def sensor_interval_seconds() -> int:
    return int(os.environ.get("STUDPERF_SENSOR_INTERVAL", "15"))
