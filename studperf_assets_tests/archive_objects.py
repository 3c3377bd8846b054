"""Firehose-style archive objects for tests: what ``local/firehose.py`` (i20-archive) and
Kinesis Data Firehose write (GZIP JSON lines under archive/<kind>/yyyy/MM/dd/HH/)."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from lambda_service.schema import FEATURE_NAMES


def prediction(
    n: int,
    version: str = "v20261127T130346Z-2cb339a3",
    grade: int = 2,
    student: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A prediction record as the Lambda writes it."""
    return {
        "model_name": "studperf-grade-class",
        "model_version": version,
        "student_id": 1_000_000 + n,
        "request_id": f"r-{n}",
        "grade_class": grade,
        "grade": "ABCDF"[grade],
        "probabilities": {"A": 0.1, "B": 0.2, "C": 0.5, "D": 0.1, "F": 0.1},
        "student": {name: (student or {}).get(name, 1) for name in FEATURE_NAMES},
        "idempotency_key": f"shardId-000000000000:{n}",
        "predicted_at": "2026-12-01T10:00:00Z",
    }


def object_key(kind: str, at: datetime, stream: str = "studperf-archive") -> str:
    at = at.astimezone(UTC)
    return (
        f"archive/{kind}/{at:%Y/%m/%d/%H}/"
        f"{stream}-{kind}-1-{at:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}.gz"
    )


def write_object(store: Any, kind: str, at: datetime, lines: list[Any]) -> str:
    """One object of ``lines`` (dicts as JSON, bytes as they are) named at ``at``."""
    body = b"".join(
        (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines
    )
    key = object_key(kind, at)
    store.put_bytes(key, gzip.compress(body), "application/gzip")
    return key


def write_predictions(
    store: Any, at: datetime, count: int, first: int = 0, **student: float
) -> str:
    return write_object(
        store, "predictions", at, [prediction(first + i, student=student) for i in range(count)]
    )
