"""The one Definitions object of the studperf code location."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    define_asset_job,
    load_asset_checks_from_modules,
    load_assets_from_modules,
)
from dagster_aws.s3 import S3Resource

from studperf_assets import settings
from studperf_assets.assets import ingestion, publishing, training
from studperf_assets.resources.io_manager import SafeIOManager
from studperf_assets.resources.model_store import LocalModelStore, ModelStore, S3ModelStore
from studperf_assets.resources.settings import TrainingSettings
from studperf_assets.resources.tracking import mlflow_tracking

ASSET_MODULES = [ingestion, training, publishing]

training_job = define_asset_job(
    "training_job",
    selection=AssetSelection.groups("training"),
    description="Raw data to a promoted model bundle, with every training check.",
)


def model_store_from_env(s3: S3Resource) -> ModelStore:
    uri = settings.model_store_uri()
    if uri.startswith("s3://"):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        return S3ModelStore(bucket=bucket, prefix=prefix.strip("/"), s3=s3)
    return LocalModelStore(root=uri or str(settings.home() / "model_store"))


def build_resources() -> dict[str, object]:
    home = settings.home()
    s3 = S3Resource()
    return {
        "s3": s3,
        "model_store": model_store_from_env(s3),
        "io_manager": SafeIOManager(base_dir=str(home / "assets")),
        "training_settings": TrainingSettings(
            work_dir=str(home / "work"), mlflow_tracking_uri=settings.mlflow_tracking_uri()
        ),
        "mlflow": mlflow_tracking.configured(
            {
                "experiment_name": settings.mlflow_experiment(),
                "mlflow_tracking_uri": settings.mlflow_tracking_uri(),
                "artifact_location": settings.mlflow_artifact_location(),
            }
        ),
    }


defs = Definitions(
    assets=load_assets_from_modules(ASSET_MODULES),
    asset_checks=load_asset_checks_from_modules(ASSET_MODULES),
    jobs=[training_job],
    resources=build_resources(),
)
