"""AWS Lambda entry point: Kinesis batches and HTTP (API Gateway / Function URL) events.

Configured by its environment (``config``). The model is loaded at cold start, outside
the handler. If that fails, the error (naming the URI) is raised by every invocation, so
Lambda retries the batch instead of losing it. Each Kinesis batch is one structured JSON
log line and one set of CloudWatch metrics (``observability``).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

from lambda_service.config import ENV_MODEL_URI, build_service
from lambda_service.observability import logger, publish_batch
from lambda_service.service import PredictionService


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
            logger.error("cold start failed", extra={"error": str(exc)})
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
        outcome = service.handle_kinesis(records)
        publish_batch(outcome)
        return outcome.response()
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
