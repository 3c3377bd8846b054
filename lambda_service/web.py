"""The local prediction web service (``studperf serve``): FastAPI over the same core.

Same routes and bodies as the Lambda's HTTP events: ``POST /predict``, ``GET /health``,
``GET /model``. Validation is the core's, so both answer bad input with the same 422.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from lambda_service.schema import FEATURES
from lambda_service.service import PredictionService


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
                "422": {"description": "invalid input: index, field and reason of each problem"}
            },
        },
    )
    async def predict(request: Request) -> JSONResponse:
        try:
            payload = await request.json()
        except ValueError:
            return JSONResponse(
                {"errors": [{"index": None, "field": None, "reason": "body is not JSON"}]}, 422
            )
        status, body = service.predict_payload(payload)
        return JSONResponse(body, status)

    return app
