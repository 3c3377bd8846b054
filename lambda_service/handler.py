"""AWS Lambda entry point: Kinesis batches and HTTP (API Gateway / Function URL) events.

The local consumer (``studperf stream``, ``up``, ``demo``) calls this same ``lambda_handler``
with the event Lambda delivers, in its own long-lived process (``studperf_assets.local``:
``poller``, ``lambda_runtime``), so the module-level service below serves it as it serves a
warm Lambda: the bundle cache and the hot swap are the same.

Configured by its environment (``config``). The model is loaded at cold start, outside
the handler. If that fails, the error (naming the URI) is raised by every invocation, so
Lambda retries the batch instead of losing it. Each Kinesis batch is one structured JSON
log line and one EMF record of CloudWatch metrics (``observability``, which flushes it); a
Powertools decorator adds the Lambda context to every log line of an invocation.
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
        self.restart(environ)  # None: the process environment, as Lambda sets it

    def restart(self, environ: dict[str, str] | None) -> None:
        """The init phase with ``environ``, as a new execution environment would run it: for
        a process that runs the handler locally on settings of its own (the demo)."""
        self.environ = environ
        self.service: PredictionService | None = None
        self.error: Exception | None = None
        if (os.environ if environ is None else environ).get(ENV_MODEL_URI):
            self.load()

    def load(self) -> None:
        try:
            self.ready()
        except Exception as exc:  # noqa: BLE001 - reported by every invocation instead
            logger.error("cold start failed", extra={"error": str(exc)})
            self.error = exc

    def ready(self) -> PredictionService:
        """The service, built now if it is not yet; raises what stops it (a local consumer
        waits for an endpoint that is away, and names any other cause in one line)."""
        if self.service is None:
            self.service = build_service(self.environ)
            self.error = None
        return self.service

    def get(self) -> PredictionService:
        if self.service is None:
            self.load()  # retry once per invocation: the bundle may have appeared since
        if self.service is None:
            raise RuntimeError(f"model unavailable: {self.error}") from self.error
        return self.service


COLD_START = _ColdStart()


@logger.inject_lambda_context  # every log line of the invocation: request id, cold start, …
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
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


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def route(event: dict[str, Any]) -> tuple[str, str]:
    """(method, path without the stage) of an HTTP event.

    REST API (v1) events carry ``path`` without the stage. HTTP API (v2) events carry
    ``rawPath`` with the stage in front when it is a named one (``/prod/predict``), not for
    ``$default``, nor for a Function URL (whose stage is ``$default``). The stage is taken
    off only where it is a whole leading segment; Powertools' ``APIGatewayProxyEventV2.path``
    cuts ``len(stage) + 1`` characters whether or not they are the stage.
    """
    context = _object(event.get("requestContext"))
    method = event.get("httpMethod") or _object(context.get("http")).get("method") or "GET"
    raw_path = event.get("rawPath")
    if isinstance(raw_path, str) and raw_path:
        path = raw_path
        stage = context.get("stage")
        if isinstance(stage, str) and stage and stage != "$default":
            prefix = "/" + stage
            if path == prefix or path.startswith(prefix + "/"):
                path = path[len(prefix) :]
    else:
        path = str(event.get("path") or "/")
    return str(method).upper(), "/" + path.strip("/")


def handle_http(service: PredictionService, event: dict[str, Any]) -> dict[str, Any]:
    """API Gateway (REST v1, HTTP v2) and Function URL events, routed on the path without
    the stage (``route``)."""
    method, path = route(event)
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
