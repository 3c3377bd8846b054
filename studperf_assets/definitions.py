"""The one Definitions object of the studperf code location."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import (
    Definitions,
    SensorDefinition,
    load_asset_checks_from_modules,
    load_assets_from_modules,
)
from dagster_aws.s3 import S3Resource

from studperf_assets import settings
from studperf_assets.assets import ingestion, monitoring, publishing, training
from studperf_assets.assets.monitoring_sensors import build_sensors
from studperf_assets.jobs import JOBS
from studperf_assets.resources.ground_truth import GroundTruth
from studperf_assets.resources.io_manager import SafeIOManager
from studperf_assets.resources.metrics_db import MetricsDatabase
from studperf_assets.resources.model_store import LocalModelStore, ModelStore, S3ModelStore
from studperf_assets.resources.monitoring import (
    AlertSender,
    MonitoringSettings,
    PredictionStream,
)
from studperf_assets.resources.object_store import LocalObjectStore, ObjectStore, S3ObjectStore
from studperf_assets.resources.settings import TrainingSettings
from studperf_assets.resources.tracking import mlflow_tracking

ASSET_MODULES = [ingestion, training, publishing, monitoring]


def model_store_for(uri: str, home: Path, s3: S3Resource) -> ModelStore:
    """``s3://bucket/prefix`` selects the S3 store; anything else is a local folder."""
    if uri.startswith("s3://"):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        return S3ModelStore(bucket=bucket, prefix=prefix.strip("/"), s3=s3)
    return LocalModelStore(root=uri or str(home / "model_store"))


def object_store_for(uri: str, home: Path, s3: S3Resource) -> ObjectStore:
    if uri.startswith("s3://"):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        return S3ObjectStore(bucket=bucket, prefix=prefix.strip("/"), s3=s3)
    return LocalObjectStore(root=uri or str(home / "monitoring"))


def build_resources(
    home: Path | None = None,
    model_store_uri: str | None = None,
    tracking_uri: str | None = None,
    monitoring_store_uri: str | None = None,
    metrics_db_url: str | None = None,
    monitoring: dict[str, Any] | None = None,
    **settings_overrides: Any,
) -> dict[str, Any]:
    """Resources from the environment (see ``settings``); tests pass their own folders."""
    if tracking_uri is None:
        # An explicit home (tests, tools) keeps MLflow inside it; MLflow itself exports
        # MLFLOW_TRACKING_URI once used, so the environment can be stale in-process.
        tracking_uri = settings.mlflow_tracking_uri() if home is None else _sqlite_uri(home)
    if metrics_db_url is None:
        metrics_db_url = settings.metrics_db_url(home)
    home = home or settings.home()
    s3 = S3Resource()
    store_uri = settings.model_store_uri() if model_store_uri is None else model_store_uri
    monitoring_uri = (
        settings.monitoring_store_uri() if monitoring_store_uri is None else monitoring_store_uri
    )
    object_store = object_store_for(monitoring_uri, home, s3)
    metrics_database = MetricsDatabase(url=metrics_db_url)
    return {
        "s3": s3,
        "model_store": model_store_for(store_uri, home, s3),
        "object_store": object_store,
        "metrics_database": metrics_database,
        "ground_truth": GroundTruth(store=object_store, database=metrics_database),
        "monitoring_settings": MonitoringSettings(
            **{"evidently_workspace": str(home / "evidently"), **(monitoring or {})}
        ),
        "alert_sender": AlertSender(
            sender=settings.alert_sender(), recipients=settings.alert_recipients()
        ),
        "prediction_stream": PredictionStream(stream_name=settings.predictions_stream()),
        "io_manager": SafeIOManager(base_dir=str(home / "assets")),
        "training_settings": TrainingSettings(
            work_dir=str(home / "work"), mlflow_tracking_uri=tracking_uri, **settings_overrides
        ),
        "mlflow": mlflow_tracking.configured(
            {
                "experiment_name": settings.mlflow_experiment(),
                "mlflow_tracking_uri": tracking_uri,
                "artifact_location": ""
                if tracking_uri.startswith(("http://", "https://"))
                else (home / "mlartifacts").as_uri(),
            }
        ),
    }


def _sqlite_uri(home: Path) -> str:
    return f"sqlite:///{home / 'mlflow.db'}"


def make_definitions(
    resources: dict[str, Any], sensors: list[SensorDefinition] | None = None
) -> Definitions:
    return Definitions(
        assets=load_assets_from_modules(ASSET_MODULES),
        asset_checks=load_asset_checks_from_modules(ASSET_MODULES),
        jobs=JOBS,
        sensors=build_sensors() if sensors is None else sensors,
        resources=resources,
    )


defs = make_definitions(
    build_resources(),
    build_sensors(settings.sensors_running(), settings.sensor_interval_seconds()),
)
