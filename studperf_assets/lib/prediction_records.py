"""What a prediction record must hold before monitoring uses it.

The Lambda writes these records, but the archive of them is the monitoring half's input,
and one record that cannot be read must not stop its window. ``lib.archive.read_window``
leaves a record that is not a prediction out of the window's rows and names it (object,
line and the problem given here); the window's ``batch_records`` check reports it.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import pandas as pd

from lambda_service.bundle import BundleError, check_version
from lambda_service.schema import (
    FEATURE_NAMES,
    GRADE_LETTERS,
    InvalidRecord,
    describe,
    parse_id,
    parse_record,
)

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


# A Kinesis eventID and a KPL sub-record number: far less than this.
MAX_IDEMPOTENCY_KEY = 256


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
    try:  # the Lambda's own schema: types, integers, ranges (one reader of a number)
        values = parse_record(body["student"])
    except InvalidRecord as invalid:
        raise UnreadablePrediction(f"student: {invalid}") from None
    body["student"] = dict(zip(FEATURE_NAMES, values, strict=True))
    _check_identifiers(body)
    _check_outputs(body)
    return body


# Probabilities are written rounded to 6 decimals: their sum is 1 within far less than this.
PROBABILITY_SUM_TOLERANCE = 1e-3


def _check_outputs(body: dict[str, Any]) -> None:
    """What the model said must be a prediction: a known grade letter that agrees with
    grade_class, probabilities of known grades that are finite numbers in [0, 1] summing
    to 1, and a time."""
    grade = body.get("grade")
    letter = GRADE_LETTERS[body["grade_class"]]
    if grade is not None and grade != letter:
        raise UnreadablePrediction(
            f"'grade' {describe(grade)} is not the letter of grade_class {body['grade_class']}"
        )
    probabilities = body["probabilities"]
    if not probabilities:
        raise UnreadablePrediction("no probabilities")
    for name, value in probabilities.items():
        if name not in GRADE_LETTERS:
            raise UnreadablePrediction(f"probability {describe(name)} is not a grade")
        if type(value) not in (int, float) or not math.isfinite(value):
            raise UnreadablePrediction(f"probability {name!r} is not a number: {describe(value)}")
        if not 0 <= value <= 1:
            raise UnreadablePrediction(f"probability {name!r} is {value:g}, outside [0, 1]")
    total = math.fsum(probabilities.values())
    if abs(total - 1) > PROBABILITY_SUM_TOLERANCE:
        raise UnreadablePrediction(f"probabilities sum to {total:.6g}, not 1")
    body["probabilities"] = {name: float(v) for name, v in probabilities.items()}
    try:
        datetime.fromisoformat(body["predicted_at"])
    except ValueError:
        raise UnreadablePrediction(
            f"'predicted_at' is not an ISO 8601 time: {describe(body['predicted_at'])}"
        ) from None


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
        body["student_id"] = parse_id("student_id", body["student_id"])
    except InvalidRecord as invalid:
        raise UnreadablePrediction(f"'student_id' {invalid.reason}") from None
    key = body["idempotency_key"]
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise UnreadablePrediction(
            f"'idempotency_key' must be 1-{MAX_IDEMPOTENCY_KEY} printable characters; "
            f"got {describe(key)}"
        )
    try:
        check_version(body["model_version"], "model_version")
    except BundleError:
        raise UnreadablePrediction("'model_version' is not a bundle version") from None


# Columns of a predictions frame that hold identifiers or text: the Lambda accepts a student
# ID as an integer or as text, and a Parquet column holds one type, so they are text in every
# frame that is written (the archive, the batch) whatever a record or an older archive held.
TEXT_COLUMNS = ("student_id", "request_id", "idempotency_key", "model_version", "predicted_at")


def with_text_identifiers(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its TEXT_COLUMNS as text (missing values stay missing)."""
    frame = frame.copy()
    for column in TEXT_COLUMNS:
        if column in frame.columns:
            values = frame[column]
            frame[column] = values.where(values.isna(), values.astype(str)).astype(object)
    return frame
