"""The local prediction web service (``studperf serve``): FastAPI over the same core.

Same routes and bodies as the Lambda's HTTP events: ``POST /predict``, ``GET /health``,
``GET /model``. Validation is the core's, so both answer bad input with the same 422, and a
body over the size limit with the same 413. Parsing and scoring run in a worker thread: a
large request never holds up ``/health``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from lambda_service.schema import FEATURES
from lambda_service.service import MAX_REQUEST_BYTES, PredictionService


def student_json_schema() -> dict[str, Any]:
    """JSON schema of one student, generated from the input schema (for OpenAPI)."""
    return {
        "type": "object",
        "required": [f.name for f in FEATURES],
        "properties": {
            f.name: {
                "type": "integer" if f.kind == "int" else "number",
                "minimum": f.minimum,
                "maximum": f.maximum,
            }
            for f in FEATURES
        },
        "additionalProperties": True,
    }


def _too_large(size: int) -> tuple[dict[str, Any], int]:
    reason = f"body of at least {size} bytes is over the {MAX_REQUEST_BYTES}-byte limit"
    return {"errors": [{"index": None, "field": None, "reason": reason}]}, 413


def create_app(service: PredictionService) -> FastAPI:
    app = FastAPI(
        title="studperf",
        description="Predict a student's grade class (A-F) from behavioural features.",
        version="1",
    )
    student = student_json_schema()

    @app.get("/health")
    def health() -> dict[str, Any]:
        return service.health()

    @app.get("/model")
    def model() -> dict[str, Any]:
        """The serving bundle's manifest."""
        return service.model()

    @app.post(
        "/predict",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                student,
                                {"type": "array", "items": student, "minItems": 1},
                                {
                                    "type": "object",
                                    "properties": {"students": {"type": "array", "items": student}},
                                },
                            ]
                        }
                    }
                },
            },
            "responses": {
                "413": {"description": f"body over {MAX_REQUEST_BYTES} bytes"},
                "422": {"description": "invalid input: index, field and reason of each problem"},
            },
        },
    )
    async def predict(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
            return JSONResponse(*_too_large(int(declared)))
        chunks, size = [], 0
        async for chunk in request.stream():  # bounded even without a Content-Length
            size += len(chunk)
            if size > MAX_REQUEST_BYTES:
                return JSONResponse(*_too_large(size))
            chunks.append(chunk)
        status, body = await run_in_threadpool(service.predict_body, b"".join(chunks))
        return JSONResponse(body, status)

    return app
