"""What a prediction record must hold before monitoring uses it.

The Lambda writes these records, but the archive of them is the monitoring half's input,
and one record that cannot be read must not stop its window. ``lib.archive.read_window``
leaves a record that is not a prediction out of the window's rows and names it (object,
line and the problem given here); the window's ``batch_records`` check reports it.
"""

from __future__ import annotations

import json
from typing import Any

from lambda_service.bundle import BundleError, check_version
from lambda_service.schema import FEATURE_NAMES, GRADE_LETTERS, InvalidRecord, parse_id

# field -> the JSON type it must have, as the Lambda writes it (service._prediction)
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "student": dict,
    "student_id": (int, str),
    "grade_class": int,
    "probabilities": dict,
    "model_version": str,
    "idempotency_key": str,
    "predicted_at": str,
}


class UnreadablePrediction(ValueError):
    """A predictions-stream record that monitoring cannot use; the message says why."""


def decode_prediction(data: bytes) -> dict[str, Any]:
    """The record's body, or UnreadablePrediction naming the problem (never another error)."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested too deeply
        raise UnreadablePrediction(f"not JSON ({type(exc).__name__})") from None
    if not isinstance(body, dict):
        raise UnreadablePrediction(f"a JSON {type(body).__name__}, not an object")
    for field, kind in REQUIRED.items():
        value = body.get(field)
        if value is None:
            raise UnreadablePrediction(f"no {field!r}")
        if not isinstance(value, kind) or isinstance(value, bool):
            raise UnreadablePrediction(f"{field!r} is a JSON {type(value).__name__}")
    if not 0 <= body["grade_class"] < len(GRADE_LETTERS):
        raise UnreadablePrediction(f"grade_class {body['grade_class']} is not a grade")
    missing = [name for name in FEATURE_NAMES if name not in body["student"]]
    if missing:
        raise UnreadablePrediction(f"student lacks {', '.join(missing)}")
    _check_identifiers(body)
    return body


def _check_identifiers(body: dict[str, Any]) -> None:
    """Identifiers that reach bounded database columns must be what the Lambda writes: a
    request ID (or, for records from before request IDs, the idempotency key that stands in
    for it) as ``lambda_service.schema`` accepts it, and a bundle version as training names
    it. One record that is not would otherwise fail its whole batch in the database."""
    request_id = body.get("request_id")
    field = "request_id" if request_id is not None else "idempotency_key"
    try:
        parse_id("request_id", request_id if request_id is not None else body["idempotency_key"])
    except InvalidRecord as invalid:
        raise UnreadablePrediction(f"{field!r} {invalid.reason}") from None
    try:
        check_version(body["model_version"], "model_version")
    except BundleError:
        raise UnreadablePrediction("'model_version' is not a bundle version") from None
