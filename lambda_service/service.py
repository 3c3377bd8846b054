"""The prediction core behind the Kinesis Lambda, the HTTP Lambda and the local web service.

A Kinesis batch is decoded and validated record by record, the valid records are scored
in one call, and every record ends up in exactly one place: the predictions stream, the
errors stream, or the batch item failures handed back to Lambda for a retry.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lambda_service.model_provider import ModelProvider
from lambda_service.predictor import Predictor
from lambda_service.schema import InvalidRecord
from lambda_service.streams import Entry, RecordSink

log = logging.getLogger("studperf.service")

MAX_ERROR_PAYLOAD = 64 * 1024  # keep error records far below Kinesis' 1 MiB limit


@dataclass
class BatchOutcome:
    records: int = 0
    predictions: int = 0
    errors: int = 0
    failures: tuple[str, ...] = ()

    def response(self) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": seq} for seq in self.failures]}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _payload_text(data: bytes) -> tuple[str, str]:
    """The original payload for an error record: text if it is UTF-8, else base64."""
    try:
        text, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(data).decode("ascii"), "base64"
    return text[:MAX_ERROR_PAYLOAD], encoding


def _student(data: bytes) -> tuple[Any, Mapping[str, Any]]:
    """(student_id, features) of one input record, or InvalidRecord."""
    try:
        message = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidRecord(None, "payload is not UTF-8 text") from None
    except ValueError as exc:
        raise InvalidRecord(
            None, f"payload is not JSON ({exc.args[0] if exc.args else exc})"
        ) from None
    if not isinstance(message, dict):
        raise InvalidRecord(None, f"payload is JSON {type(message).__name__}, not an object")
    student_id = message.get("student_id")
    if student_id is None or isinstance(student_id, bool) or not isinstance(student_id, int | str):
        raise InvalidRecord("student_id", "missing, or not an integer or string")
    student = message.get("student")
    if not isinstance(student, dict):
        raise InvalidRecord("student", "missing, or not an object of features")
    return student_id, student


class PredictionService:
    def __init__(
        self,
        provider: ModelProvider,
        sink: RecordSink | None = None,
        predictions_stream: str = "",
        errors_stream: str = "",
        now: Callable[[], str] = _now,
    ) -> None:
        self.provider = provider
        self.sink = sink
        self.predictions_stream = predictions_stream
        self.errors_stream = errors_stream
        self.now = now

    # ---- Kinesis -----------------------------------------------------------------
    def handle_kinesis(self, records: Sequence[Mapping[str, Any]]) -> BatchOutcome:
        if self.sink is None:
            raise RuntimeError("no output streams configured for Kinesis events")
        predictor = self.provider.predictor
        started = time.perf_counter()
        at = self.now()
        rows: list[list[float]] = []
        valid: list[tuple[tuple[str, str], Any, list[float]]] = []
        errors: list[Entry] = []
        for record in records:
            kinesis = record["kinesis"]
            sequence = str(kinesis["sequenceNumber"])
            # eventID ("shardId-…:sequence") is unique per stream; sequence numbers are
            # only unique per shard. Failures are still reported by sequence number.
            key = str(record.get("eventID") or sequence)
            partition_key = str(kinesis.get("partitionKey", sequence))
            try:
                data = base64.b64decode(kinesis["data"], validate=True)
            except (binascii.Error, ValueError, TypeError):
                data = str(kinesis.get("data", "")).encode("utf-8", "replace")
                errors.append(
                    self._error(
                        InvalidRecord(None, "data is not base64"),
                        data,
                        (sequence, key),
                        partition_key,
                        predictor,
                        at,
                    )
                )
                continue
            try:
                student_id, student = _student(data)
                features = predictor.parse(student)
            except InvalidRecord as invalid:
                errors.append(
                    self._error(invalid, data, (sequence, key), partition_key, predictor, at)
                )
                continue
            rows.append(features)
            valid.append(((sequence, key), student_id, features))
        labels, probabilities = predictor.predict_matrix(rows)
        predictions = [
            self._prediction(predictor, item, int(label), probs, at)
            for item, label, probs in zip(valid, labels, probabilities, strict=True)
        ]
        failed = self.sink.put(self.predictions_stream, predictions)
        failed += self.sink.put(self.errors_stream, errors)
        outcome = BatchOutcome(
            records=len(records),
            predictions=len(predictions)
            - len(set(failed) & {p.source_sequence for p in predictions}),
            errors=len(errors) - len(set(failed) & {e.source_sequence for e in errors}),
            failures=tuple(sorted(set(failed), key=lambda s: (len(s), s))),
        )
        log.info(
            "batch of %d: %d predicted, %d errors, %d to retry, model %s, %.1f ms",
            outcome.records, outcome.predictions, outcome.errors, len(outcome.failures),
            predictor.version, (time.perf_counter() - started) * 1000,
        )  # fmt: skip
        return outcome

    def _prediction(
        self,
        predictor: Predictor,
        item: tuple[tuple[str, str], Any, list[float]],
        label: int,
        probabilities: Any,
        at: str,
    ) -> Entry:
        (sequence, key), student_id, features = item
        body = {
            "model_name": predictor.manifest.model_name,
            "model_version": predictor.version,
            "student_id": student_id,
            "grade_class": label,
            "grade": predictor.labels[label],
            "probabilities": {
                g: round(float(p), 6) for g, p in zip(predictor.labels, probabilities, strict=True)
            },
            "student": {f.name: v for f, v in zip(predictor.features, features, strict=True)},
            "idempotency_key": key,
            "predicted_at": at,
        }
        return Entry(json.dumps(body, separators=(",", ":")).encode(), str(student_id), sequence)

    def _error(
        self,
        invalid: InvalidRecord,
        data: bytes,
        ids: tuple[str, str],
        partition_key: str,
        predictor: Predictor,
        at: str,
    ) -> Entry:
        sequence, key = ids
        payload, encoding = _payload_text(data)
        body = {
            "reason": invalid.reason,
            "field": invalid.field,
            "payload": payload,
            "payload_encoding": encoding,
            "payload_truncated": len(data) > MAX_ERROR_PAYLOAD,
            "idempotency_key": key,
            "partition_key": partition_key,
            "model_version": predictor.version,
            "failed_at": at,
        }
        return Entry(json.dumps(body, separators=(",", ":")).encode(), partition_key, sequence)

    # ---- HTTP --------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return {"status": "ok", "model_version": self.provider.predictor.version}

    def model(self) -> dict[str, Any]:
        return dict(self.provider.predictor.manifest.__dict__)

    def predict_payload(self, payload: Any) -> tuple[int, dict[str, Any]]:
        """One student object, a list of them, or {"students": [...]}: 200 or 422."""
        single = isinstance(payload, dict) and "students" not in payload
        students = (
            [payload]
            if single
            else payload.get("students")
            if isinstance(payload, dict)
            else payload
        )
        if not isinstance(students, list) or not students:
            return 422, {
                "errors": [
                    {
                        "index": None,
                        "field": None,
                        "reason": "expected a student object or a non-empty list of them",
                    }
                ]
            }
        predictor = self.provider.predictor
        rows, problems = [], []
        for index, student in enumerate(students):
            try:
                rows.append(predictor.parse(student))
            except InvalidRecord as invalid:
                problems.append({"index": index, "field": invalid.field, "reason": invalid.reason})
        if problems:
            return 422, {"errors": problems}
        labels, probabilities = predictor.predict_matrix(rows)
        results = [
            {
                "grade_class": int(label),
                "grade": predictor.labels[int(label)],
                "probabilities": {
                    g: round(float(p), 6) for g, p in zip(predictor.labels, probs, strict=True)
                },
            }
            for label, probs in zip(labels, probabilities, strict=True)
        ]
        body: dict[str, Any] = {"model_version": predictor.version}
        if single:
            body.update(results[0])
        else:
            body["predictions"] = results
        return 200, body
