"""AWS Lambda entry point: Kinesis batches and HTTP (API Gateway / Function URL) events.

Configuration (environment):

| variable | meaning |
| --- | --- |
| MODEL_BUNDLE_URI | a bundle (``s3://…/bundles/<version>`` or folder), a model store |
|  | root, or its ``production.json`` (followed and hot-swapped) |
| PREDICTIONS_STREAM_NAME | Kinesis stream for predictions |
| ERRORS_STREAM_NAME | Kinesis stream for records that cannot be scored |
| MODEL_REFRESH_SECONDS | how often to re-check the production pointer (default 60) |
| MODEL_CACHE_DIR | where bundles are cached (default /tmp/studperf-bundles) |
| PUT_MAX_ATTEMPTS | PutRecords attempts per chunk before reporting failures (default 5) |
| LOG_LEVEL | the root logger's level (default INFO) |
| AWS_ENDPOINT_URL, AWS_REGION | standard boto3 settings (moto locally; unset in AWS) |

The model is loaded at cold start, outside the handler. If that fails, the error (naming
the URI) is raised by every invocation, so Lambda retries the batch instead of losing it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from pathlib import Path
from typing import Any

from lambda_service.model_provider import ModelProvider
from lambda_service.service import PredictionService
from lambda_service.streams import KinesisSink

ENV_LOG_LEVEL = "LOG_LEVEL"
logging.getLogger().setLevel(os.environ.get(ENV_LOG_LEVEL, "INFO"))
log = logging.getLogger("studperf.handler")

ENV_MODEL_URI = "MODEL_BUNDLE_URI"
ENV_PREDICTIONS = "PREDICTIONS_STREAM_NAME"
ENV_ERRORS = "ERRORS_STREAM_NAME"
ENV_REFRESH = "MODEL_REFRESH_SECONDS"
ENV_CACHE = "MODEL_CACHE_DIR"
ENV_ATTEMPTS = "PUT_MAX_ATTEMPTS"
ENVIRONMENT_VARIABLES = (
    ENV_MODEL_URI,
    ENV_PREDICTIONS,
    ENV_ERRORS,
    ENV_REFRESH,
    ENV_CACHE,
    ENV_ATTEMPTS,
    ENV_LOG_LEVEL,
)


def build_service(environ: dict[str, str] | None = None) -> PredictionService:
    """Wire the service from the environment (boto3 clients made once, reused warm)."""
    import boto3

    env = dict(os.environ if environ is None else environ)
    uri = env.get(ENV_MODEL_URI, "")
    if not uri:
        raise RuntimeError(f"{ENV_MODEL_URI} is not set")
    s3 = boto3.client("s3") if uri.startswith("s3://") else None
    provider = ModelProvider(
        uri,
        Path(env.get(ENV_CACHE, "/tmp/studperf-bundles")),
        refresh_seconds=float(env.get(ENV_REFRESH, "60")),
        s3=s3,
    )
    sink = None
    if env.get(ENV_PREDICTIONS) or env.get(ENV_ERRORS):
        sink = KinesisSink(boto3.client("kinesis"), max_attempts=int(env.get(ENV_ATTEMPTS, "5")))
    return PredictionService(
        provider,
        sink,
        predictions_stream=env.get(ENV_PREDICTIONS, ""),
        errors_stream=env.get(ENV_ERRORS, ""),
    )


class _ColdStart:
    """The service built at import time, or the reason it could not be."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self.environ = environ  # None: the process environment, as Lambda sets it
        self.service: PredictionService | None = None
        self.error: Exception | None = None
        if (os.environ if environ is None else environ).get(ENV_MODEL_URI):
            self.load()

    def load(self) -> None:
        try:
            self.service = build_service(self.environ)
            self.error = None
        except Exception as exc:  # noqa: BLE001 - reported by every invocation instead
            log.error("cold start failed: %s", exc)
            self.error = exc

    def get(self) -> PredictionService:
        if self.service is None:
            self.load()  # retry once per invocation: the bundle may have appeared since
        if self.service is None:
            raise RuntimeError(f"model unavailable: {self.error}") from self.error
        return self.service


COLD_START = _ColdStart()


def lambda_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    service = COLD_START.get()
    records = event.get("Records")
    if records is not None:
        return service.handle_kinesis(records).response()
    return handle_http(service, event)


def _response(status: int, body: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }


def handle_http(service: PredictionService, event: dict[str, Any]) -> dict[str, Any]:
    """API Gateway (REST v1, HTTP v2) and Function URL events."""
    http = event.get("requestContext", {}).get("http", {})
    method = str(event.get("httpMethod") or http.get("method") or "GET").upper()
    path = "/" + str(event.get("rawPath") or event.get("path") or "/").strip("/")
    if method == "GET" and path == "/health":
        return _response(200, service.health())
    if method == "GET" and path == "/model":
        return _response(200, service.model())
    if method == "POST" and path == "/predict":
        body = event.get("body") or ""
        if event.get("isBase64Encoded"):
            try:
                raw = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                reason = "body is marked base64 but is not valid base64"
                return _response(
                    422, {"errors": [{"index": None, "field": None, "reason": reason}]}
                )
        else:
            raw = str(body).encode("utf-8", "surrogatepass")
        return _response(*service.predict_body(raw))
    return _response(404, {"error": f"no route for {method} {path}"})
