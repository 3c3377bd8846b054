"""Dagster resources, and the two resource sets a deployment picks between.

``local_resources``: folders and SQLite under the deployment's home, no server needed.
``aws_resources``: S3 stores, databases and MLflow named by URL. Each resource is a
``ConfigurableResource`` with one interface and a local and an S3 implementation where
storage is involved (model store, object store, the IO manager on top of it), except
``mlflow``: dagster-mlflow's ``MlFlow`` is a function-style ``@resource`` whose
``mlflow_run_id`` API the training assets use, and ``tracking.mlflow_tracking`` wraps it
(lazily, see ``LazyMlFlow``) rather than re-implement it.
"""

from __future__ import annotations

from typing import Any

from dagster import EnvVar
from dagster_aws.s3 import S3Resource

from lambda_service.bundle import split_s3_uri
from studperf_assets.deployment import (
    AWS_IO_STORE_PREFIX,
    LOCAL_FILES,
    Deployment,
    DeploymentError,
    FromEnv,
)
from studperf_assets.resources.ground_truth import GroundTruth
from studperf_assets.resources.io_manager import SafeIOManager
from studperf_assets.resources.metrics_db import MetricsDatabase
from studperf_assets.resources.model_store import LocalModelStore, ModelStore, S3ModelStore
from studperf_assets.resources.monitoring import AlertSender, MonitoringSettings
from studperf_assets.resources.object_store import LocalObjectStore, ObjectStore, S3ObjectStore
from studperf_assets.resources.tracking import mlflow_tracking
from studperf_assets.resources.training_settings import TrainingSettings


def local_resources(d: Deployment) -> dict[str, Any]:
    """The embedded default: folders and SQLite under ``home``; no server needed."""
    stores = {name: d.local_store(name) for name in ("model_store", "monitoring_store", "io_store")}
    s3 = S3Resource()  # only for an s3:// data source
    object_store = LocalObjectStore(root=stores["monitoring_store"])
    tracking = d.mlflow_tracking_uri or f"sqlite:///{d.home / LOCAL_FILES['mlflow_tracking_uri']}"
    artifacts = d.mlflow_artifacts
    return _shared(
        d,
        s3=s3,
        model_store=LocalModelStore(root=stores["model_store"]),
        object_store=object_store,
        io_store=LocalObjectStore(root=stores["io_store"]),
        metrics_db_url=d.metrics_db_url or f"sqlite:///{d.home / LOCAL_FILES['metrics_db_url']}",
        tracking_uri=tracking,
        artifacts=(
            (d.home / LOCAL_FILES["mlflow_artifacts"]).as_uri() if artifacts is None else artifacts
        ),
    )


def aws_resources(d: Deployment) -> dict[str, Any]:
    """Stores on S3, databases and MLflow named by URL (read at run time)."""
    missing = [
        variable
        for variable, value in (
            ("STUDPERF_MODEL_STORE", d.model_store),
            ("STUDPERF_MONITORING_STORE", d.monitoring_store),
            ("STUDPERF_METRICS_DB_URL", d.metrics_db_url),
            ("MLFLOW_TRACKING_URI", d.mlflow_tracking_uri),
        )
        if not value
    ]
    if missing:
        raise DeploymentError(f"the aws deployment needs {', '.join(missing)}")
    s3 = S3Resource()
    monitoring_bucket, _ = split_s3_uri(_s3_uri("monitoring_store", d.monitoring_store))
    return _shared(
        d,
        s3=s3,
        model_store=_on_s3(S3ModelStore, _s3_uri("model_store", d.model_store), s3),
        object_store=_on_s3(S3ObjectStore, d.monitoring_store, s3),
        io_store=_on_s3(
            S3ObjectStore, d.io_store or f"s3://{monitoring_bucket}/{AWS_IO_STORE_PREFIX}", s3
        ),
        metrics_db_url=d.metrics_db_url,
        tracking_uri=d.mlflow_tracking_uri,
        artifacts=d.mlflow_artifacts or "",
    )


def _s3_uri(name: str, uri: str) -> str:
    if not uri.startswith("s3://"):
        raise DeploymentError(f"the aws deployment keeps {name} on S3, not at {uri!r}")
    return uri


def _on_s3(kind: Any, uri: str, s3: S3Resource) -> Any:
    bucket, prefix = split_s3_uri(_s3_uri("a store", uri))
    return kind(bucket=bucket, prefix=prefix, s3=s3)


def _shared(
    d: Deployment,
    *,
    s3: S3Resource,
    model_store: ModelStore,
    object_store: ObjectStore,
    io_store: ObjectStore,
    metrics_db_url: str,
    tracking_uri: str,
    artifacts: str,
) -> dict[str, Any]:
    metrics_database = MetricsDatabase(url=_resolved_at_run_time(metrics_db_url))
    monitoring = {"evidently_workspace": str(d.home / "evidently"), **d.monitoring}
    return {
        "s3": s3,
        "model_store": model_store,
        "object_store": object_store,
        "metrics_database": metrics_database,
        "ground_truth": GroundTruth(store=object_store, database=metrics_database),
        "monitoring_settings": _settings(MonitoringSettings, monitoring, "monitoring"),
        "alert_sender": AlertSender(
            sender=d.alert_sender,
            recipients=list(d.alert_recipients),
            dagster_url=d.dagster_url,
            evidently_url=d.evidently_url,
            mlflow_url=d.mlflow_url,
        ),
        "io_manager": SafeIOManager(store=io_store, prefix="assets"),
        "training_settings": _settings(
            TrainingSettings, {"work_dir": str(d.home / "work"), **d.training}, "training"
        ),
        "mlflow": mlflow_tracking.configured(
            {
                "experiment_name": d.mlflow_experiment,
                # a FromEnv becomes {"env": NAME}: resolved when the run starts, never shown
                "mlflow_tracking_uri": {"env": str(tracking_uri)}
                if isinstance(tracking_uri, FromEnv)
                else tracking_uri,
                "artifact_location": artifacts,
            }
        ),
    }


def _settings(kind: type[Any], values: dict[str, Any], name: str) -> Any:
    """A settings resource, or DeploymentError naming the fields it does not have: a
    misspelt or retired setting (``max_rows``) must not be silently ignored."""
    unknown = sorted(set(values) - set(kind.model_fields))
    if unknown:
        raise DeploymentError(
            f"unknown {name} setting(s) {', '.join(unknown)}; known: "
            f"{', '.join(sorted(kind.model_fields))}"
        )
    return kind(**values)


def _resolved_at_run_time(value: str) -> str:
    return EnvVar(str(value)) if isinstance(value, FromEnv) else value


RESOURCE_SETS = {"local": local_resources, "aws": aws_resources}


def resources_for(deployment: Deployment) -> dict[str, Any]:
    return RESOURCE_SETS[deployment.kind](deployment)
