"""Environment-driven defaults: everything runs embedded under ``STUDPERF_HOME``.

| variable | default | meaning |
| --- | --- | --- |
| STUDPERF_HOME | ./.studperf | working folder: Dagster, MLflow, model store, IO |
| STUDPERF_MODEL_STORE | (local folder) | ``s3://bucket/prefix`` switches to the S3 store |
| STUDPERF_DATA_SOURCE | (bundled CSV) | raw CSV path or ``s3://`` URI |
| MLFLOW_TRACKING_URI | sqlite:///$STUDPERF_HOME/mlflow.db | MLflow backend |
| STUDPERF_MLFLOW_EXPERIMENT | studperf | MLflow experiment |
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
