"""Where studperf runs, and every setting it takes: one switch, ``local`` or ``aws``.

``Deployment`` holds every setting as a parameter; tests, the demo and tools build one
directly. ``Deployment.from_environment()`` is the only place the code location reads its
settings from the environment (the Lambda reads its own: ``lambda_service.config``; the
log format a person chose, ``STUDPERF_LOG_FORMAT``, is read where lines are written,
``lib.progress``); ``resources_for`` (in
``studperf_assets.resources``) turns a deployment into an explicit resource set:

- ``local`` (the embedded default): stores are folders, MLflow and the monitoring
  database are SQLite files, all under ``home``;
- ``aws``: stores are S3 prefixes and the databases are servers named by URL.

URLs that may carry a password (the monitoring database, MLflow) are kept as
``FromEnv`` references when they come from the environment: resources read them when a run
starts, so they are never shown in the Dagster UI. This module imports nothing heavy:
``studperf predict`` reads its home through it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("local", "aws")
DEFAULT_HOME = ".studperf"  # STUDPERF_HOME, relative to the working folder
DEFAULT_SENDER = "studperf-alerts@example.org"
DEFAULT_RECIPIENTS = ("ml-oncall@example.org",)
# Databases `studperf init-db` adds beside Dagster's on a shared server (RDS in AWS).
SERVER_DATABASES = ("mlflow", "monitoring")

# Every variable the code location and its commands read (the Lambda's: lambda_service.config).
ENVIRONMENT_VARIABLES = (
    "STUDPERF_DEPLOYMENT",
    "STUDPERF_HOME",
    "STUDPERF_DATA_SOURCE",
    "STUDPERF_MODEL_STORE",
    "STUDPERF_MONITORING_STORE",
    "STUDPERF_IO_STORE",
    "STUDPERF_METRICS_DB_URL",
    "MLFLOW_TRACKING_URI",
    "STUDPERF_MLFLOW_EXPERIMENT",
    "STUDPERF_MLFLOW_ARTIFACTS",
    "STUDPERF_PREDICTIONS_STREAM",
    "STUDPERF_ALERT_SENDER",
    "STUDPERF_ALERT_RECIPIENTS",
    "STUDPERF_DAGSTER_URL",
    "STUDPERF_EVIDENTLY_URL",
    "STUDPERF_MLFLOW_URL",
    "STUDPERF_SENSORS",
    "STUDPERF_SENSOR_INTERVAL",
    "STUDPERF_MONITORING",
    # the CLI (studperf_assets.cli) and studperf up (studperf_assets.local.stack)
    "DAGSTER_HOME",
    "STUDPERF_DAGSTER_STORAGE",
    "STUDPERF_DAGSTER_PG_URL",
    "STUDPERF_AWS_PORT",
    "STUDPERF_UI_PORT",
    "STUDPERF_EVIDENTLY_PORT",
    "STUDPERF_MLFLOW_PORT",
    "STUDPERF_LOCAL_KINESIS_RETENTION",
    "STUDPERF_LOG_FORMAT",
    "STUDPERF_LOG_LEVEL",
    "STUDPERF_LOG_MAX_BYTES",
    "STUDPERF_LOG_BACKUPS",
)
# The local stores' folders under the home, unless set (the io store is the home itself).
LOCAL_STORE_FOLDERS = {
    "model_store": "model_store",
    "monitoring_store": "monitoring",
    "io_store": "",
}
# The local databases and MLflow's artifact root under the home, unless set.
LOCAL_FILES = {
    "metrics_db_url": "monitoring.db",
    "mlflow_tracking_uri": "mlflow.db",
    "mlflow_artifacts": "mlartifacts",
}
DAGSTER_FOLDER = "dagster"  # DAGSTER_HOME, unless set: the Dagster instance under the home
AWS_IO_STORE_PREFIX = "dagster-io"  # aws: the io store under the monitoring bucket, unless set
SECRET_URLS = {
    "metrics_db_url": "STUDPERF_METRICS_DB_URL",
    "mlflow_tracking_uri": "MLFLOW_TRACKING_URI",
}


class DeploymentError(ValueError):
    """A setting that does not fit the chosen deployment."""


class FromEnv(str):
    """A setting a resource reads from this environment variable (the value is the
    variable's name) when a run starts: how a password stays out of resource config."""


@dataclass(frozen=True)
class Deployment:
    """Every setting of a studperf deployment. Empty strings mean "the default under
    ``home``" for ``local``; ``aws`` needs its stores and databases named."""

    kind: str = "local"
    home: Path = field(default_factory=lambda: Path(DEFAULT_HOME).resolve())
    data_source: str = ""  # raw CSV path or s3:// URI; "" = the bundled dataset
    model_store: str = ""  # a folder (local) or s3://bucket/prefix (aws)
    monitoring_store: str = ""  # batches, reports, labels: a folder or s3://bucket/prefix
    io_store: str = ""  # asset values between steps; aws: <monitoring bucket>/dagster-io
    metrics_db_url: str = ""  # the monitoring database (a FromEnv when read from the env)
    mlflow_tracking_uri: str = ""  # likewise
    mlflow_experiment: str = "studperf"
    mlflow_artifacts: str | None = None  # None: under home (local) / the server decides (aws)
    predictions_stream: str = "studperf-predictions"
    alert_sender: str = DEFAULT_SENDER
    alert_recipients: tuple[str, ...] = DEFAULT_RECIPIENTS
    dagster_url: str = "http://127.0.0.1:3000"  # base of the run links in alert e-mails
    evidently_url: str = "http://127.0.0.1:8085"  # base of the Evidently links ("": none)
    mlflow_url: str = "http://127.0.0.1:5005"  # base of the MLflow model links ("": none)
    sensors_running: bool = True
    sensor_interval_seconds: int = 15
    monitoring: Mapping[str, Any] = field(default_factory=dict)  # MonitoringSettings fields
    training: Mapping[str, Any] = field(default_factory=dict)  # TrainingSettings fields

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DeploymentError(f"STUDPERF_DEPLOYMENT must be one of {KINDS}, not {self.kind!r}")
        for variable, url in (
            ("STUDPERF_DAGSTER_URL", self.dagster_url),
            ("STUDPERF_EVIDENTLY_URL", self.evidently_url),
            ("STUDPERF_MLFLOW_URL", self.mlflow_url),
        ):  # an e-mail keeps only web links: any other base would drop its links unsaid
            if url and not url.lower().startswith(("http://", "https://")):
                raise DeploymentError(
                    f"{variable} must be an http(s) URL or empty (no links), not {url!r}"
                )

    def local_store(self, name: str) -> str:
        """Where a store (``model_store``, ``monitoring_store``, ``io_store``) is in the
        local deployment: its setting, or its default under ``home``. The one place those
        defaults are decided: the resources and ``studperf up`` both ask here."""
        value = str(getattr(self, name))
        if value.startswith("s3://"):
            raise DeploymentError(f"{name} {value} is on S3: use the aws deployment")
        return value or str(self.home / LOCAL_STORE_FOLDERS[name])

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Deployment:
        env = os.environ if environ is None else environ
        # an unset variable is the field's default (``cls.<field>``): one place for each
        sensors = env.get("STUDPERF_SENSORS", sensors_setting(cls.sensors_running)).strip().lower()
        if sensors not in ("running", "stopped"):
            raise DeploymentError(f"STUDPERF_SENSORS must be running or stopped, not {sensors!r}")
        recipients = env.get("STUDPERF_ALERT_RECIPIENTS", ",".join(DEFAULT_RECIPIENTS))
        try:
            monitoring = json.loads(env.get("STUDPERF_MONITORING") or "{}")
        except ValueError as exc:
            raise DeploymentError(f"STUDPERF_MONITORING is not JSON: {exc}") from None
        if not isinstance(monitoring, dict):
            raise DeploymentError("STUDPERF_MONITORING must be a JSON object of settings")
        secrets: dict[str, Any] = {
            name: FromEnv(var) if env.get(var) else "" for name, var in SECRET_URLS.items()
        }
        kind = env.get("STUDPERF_DEPLOYMENT", cls.kind)
        local = kind == "local"
        return cls(
            kind=kind,
            home=home_from_environment(env),
            data_source=env.get("STUDPERF_DATA_SOURCE", ""),
            model_store=env.get("STUDPERF_MODEL_STORE", ""),
            monitoring_store=env.get("STUDPERF_MONITORING_STORE", ""),
            io_store=env.get("STUDPERF_IO_STORE", ""),
            mlflow_experiment=env.get("STUDPERF_MLFLOW_EXPERIMENT", cls.mlflow_experiment),
            mlflow_artifacts=env.get("STUDPERF_MLFLOW_ARTIFACTS"),
            predictions_stream=env.get("STUDPERF_PREDICTIONS_STREAM", cls.predictions_stream),
            alert_sender=env.get("STUDPERF_ALERT_SENDER", DEFAULT_SENDER),
            alert_recipients=tuple(r.strip() for r in recipients.split(",") if r.strip()),
            dagster_url=env.get("STUDPERF_DAGSTER_URL", cls.dagster_url),
            # no Evidently UI is deployed in AWS: no link unless one is named
            evidently_url=env.get("STUDPERF_EVIDENTLY_URL", cls.evidently_url if local else ""),
            mlflow_url=env.get("STUDPERF_MLFLOW_URL", cls.mlflow_url),
            sensors_running=sensors == "running",
            sensor_interval_seconds=int(
                env.get("STUDPERF_SENSOR_INTERVAL", str(cls.sensor_interval_seconds))
            ),
            monitoring=monitoring,
            **secrets,
        )


def sensors_setting(running: bool) -> str:
    """``STUDPERF_SENSORS``' value for sensors running or not."""
    return "running" if running else "stopped"


def home_from_environment(environ: Mapping[str, str] | None = None) -> Path:
    """``STUDPERF_HOME`` (default ``./.studperf``), absolute. Read alone, without validating the
    rest of the deployment: the demo and the instance folder need only the home, and a
    half-set AWS environment must not stop them."""
    env = os.environ if environ is None else environ
    return Path(env.get("STUDPERF_HOME", DEFAULT_HOME)).resolve()
