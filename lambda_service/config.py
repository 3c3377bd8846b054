"""What the prediction service reads from its environment, and how it is wired from it.

Shared by the Lambda entry point (``handler``) and the local commands (``studperf stream``,
``studperf serve``), which set the same variables.

| variable | meaning |
| --- | --- |
| MODEL_BUNDLE_URI | a bundle (``s3://…/bundles/<version>`` or folder), a model store |
|  | root, or its ``production.json`` (followed and hot-swapped) |
| PREDICTIONS_STREAM_NAME | Kinesis stream for predictions |
| ERRORS_STREAM_NAME | Kinesis stream for records that cannot be scored |
| MODEL_REFRESH_SECONDS | how often to re-check the production pointer |
| MODEL_CACHE_DIR | where bundles are cached |
| MODEL_MAX_MB | the most a bundle's files may hold, in MiB; larger is refused |
| PUT_MAX_ATTEMPTS | PutRecords attempts per chunk before reporting failures |
| LOG_LEVEL | the log level |
| AWS_ENDPOINT_URL, AWS_REGION | standard boto3 settings (moto locally; unset in AWS) |

The defaults are the ``DEFAULT_*`` constants below (``DEFAULT_MAX_BUNDLE_BYTES`` in
``bundle``); docs/configuration.md's table is rendered from them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lambda_service.bundle import DEFAULT_MAX_BUNDLE_BYTES
from lambda_service.model_provider import ModelProvider
from lambda_service.service import PredictionService
from lambda_service.streams import KinesisSink

ENV_MODEL_URI = "MODEL_BUNDLE_URI"
ENV_PREDICTIONS = "PREDICTIONS_STREAM_NAME"
ENV_ERRORS = "ERRORS_STREAM_NAME"
ENV_REFRESH = "MODEL_REFRESH_SECONDS"
ENV_CACHE = "MODEL_CACHE_DIR"
ENV_MAX_MB = "MODEL_MAX_MB"
ENV_ATTEMPTS = "PUT_MAX_ATTEMPTS"
ENV_LOG_LEVEL = "LOG_LEVEL"
DEFAULT_REFRESH_SECONDS = 60
DEFAULT_CACHE_DIR = "/tmp/studperf-bundles"
DEFAULT_PUT_MAX_ATTEMPTS = 5
DEFAULT_LOG_LEVEL = "INFO"
ENVIRONMENT_VARIABLES = (
    ENV_MODEL_URI,
    ENV_PREDICTIONS,
    ENV_ERRORS,
    ENV_REFRESH,
    ENV_CACHE,
    ENV_MAX_MB,
    ENV_ATTEMPTS,
    ENV_LOG_LEVEL,
)


def max_bundle_bytes(env: dict[str, str]) -> int:
    """MODEL_MAX_MB in bytes: the most one bundle's files may hold (see bundle.py)."""
    raw = env.get(ENV_MAX_MB, "")
    if not raw:
        return DEFAULT_MAX_BUNDLE_BYTES
    try:
        megabytes = float(raw)
    except ValueError:
        megabytes = 0.0
    if not 0 < megabytes < 1 << 20:
        raise RuntimeError(f"{ENV_MAX_MB} must be a positive number of MiB, not {raw!r}")
    return int(megabytes * (1 << 20))


def model_store_client() -> Any:
    """S3 client for the model store with short timeouts: a hot swap happens between two
    batches, and a store that stops answering must not hold the next one for minutes
    (botocore's defaults: 60 s per connect and per read, 5 attempts)."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=5, read_timeout=15, retries={"mode": "standard", "max_attempts": 3}
    )
    return boto3.client("s3", config=config)


def build_service(environ: dict[str, str] | None = None) -> PredictionService:
    """Wire the service from the environment (boto3 clients made once, reused warm)."""
    import boto3

    env = dict(os.environ if environ is None else environ)
    uri = env.get(ENV_MODEL_URI, "")
    if not uri:
        raise RuntimeError(f"{ENV_MODEL_URI} is not set")
    s3 = model_store_client() if uri.startswith("s3://") else None
    provider = ModelProvider(
        uri,
        Path(env.get(ENV_CACHE, DEFAULT_CACHE_DIR)),
        refresh_seconds=float(env.get(ENV_REFRESH, DEFAULT_REFRESH_SECONDS)),
        s3=s3,
        max_bytes=max_bundle_bytes(env),
    )
    sink = None
    if env.get(ENV_PREDICTIONS) or env.get(ENV_ERRORS):
        sink = KinesisSink(
            boto3.client("kinesis"),
            max_attempts=int(env.get(ENV_ATTEMPTS, DEFAULT_PUT_MAX_ATTEMPTS)),
        )
    return PredictionService(
        provider,
        sink,
        predictions_stream=env.get(ENV_PREDICTIONS, ""),
        errors_stream=env.get(ENV_ERRORS, ""),
    )
