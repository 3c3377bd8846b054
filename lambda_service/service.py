"""The prediction core behind the Kinesis Lambda, the HTTP Lambda and the local web service.

A Kinesis batch is decoded and validated record by record (a KPL aggregated record is split
into its user records, ``kpl``), the valid ones are scored in one call, and every user record
ends up in exactly one place: the predictions stream, the errors stream, or the batch item
failures handed back to Lambda for a retry (by the sequence number of the Kinesis record that
carried it). A batch the model fails to score (an exception, or output that cannot be served)
is not its records' fault: its valid records are reported for retry, and the handler goes on.
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

from lambda_service.kpl import MAGIC, Aggregate, deaggregate
from lambda_service.model_provider import ModelProvider
from lambda_service.predictor import Predictor
from lambda_service.schema import InvalidRecord, parse_id
from lambda_service.smoke import InvalidModelOutput
from lambda_service.streams import Entry, RecordSink

log = logging.getLogger("studperf.service")

MAX_ERROR_PAYLOAD = 64 * 1024  # keep error records far below Kinesis' 1 MiB limit
MAX_PARTITION_KEY = 256
# A prediction request body, HTTP (Lambda URL / API Gateway / studperf serve): the Lambda's own
# synchronous payload limit, so both paths refuse the same size (about 30,000 students).
MAX_REQUEST_BYTES = 6 * 1024 * 1024
# User records a batch may hold. Lambda delivers at most 6 MB, about 26,000 of the smallest
# valid messages (~170 bytes); an aggregate of empty user records could hold millions, and
# millions of error records would exhaust the function's memory on every retry.
MAX_USER_RECORDS = 50_000


@dataclass
class BatchOutcome:
    """records (user records: a plain Kinesis record is one) = predictions + errors + failed."""

    records: int = 0
    predictions: int = 0
    errors: int = 0
    failures: tuple[str, ...] = ()  # sequence numbers of the Kinesis records to retry
    model_version: str = ""
    milliseconds: float = 0.0  # decoding, validating, scoring and writing the batch
    failed: int = 0  # user records in the Kinesis records to retry
    aggregated: int = 0  # Kinesis records that were KPL aggregated records
    scoring_failures: int = 0  # of the failed, valid user records the model failed to score

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


def _message(data: bytes) -> tuple[int | str, str | None, Mapping[str, Any]]:
    """(student_id, request_id or None, features) of one input record, or InvalidRecord."""
    try:
        message = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidRecord(None, "payload is not UTF-8 text") from None
    except RecursionError:
        raise InvalidRecord(None, "payload is JSON nested too deeply") from None
    except ValueError as exc:
        reason = str(exc.args[0] if exc.args else exc)[:200]
        raise InvalidRecord(None, f"payload is not JSON ({reason})") from None
    if not isinstance(message, dict):
        raise InvalidRecord(None, f"payload is JSON {type(message).__name__}, not an object")
    if message.get("student_id") is None:
        raise InvalidRecord("student_id", "missing")
    student_id = parse_id("student_id", message["student_id"])
    request_id = message.get("request_id")
    if request_id is not None:
        request_id = str(parse_id("request_id", request_id))
    student = message.get("student")
    if not isinstance(student, dict):
        raise InvalidRecord("student", "missing, or not an object of features")
    return student_id, request_id, student


class _Source:
    """Where one Kinesis record came from: how to report it, and how to key its output."""

    __slots__ = ("key", "partition", "sequence")

    def __init__(self, record: Any, index: int) -> None:
        kinesis = record.get("kinesis") if isinstance(record, dict) else None
        kinesis = kinesis if isinstance(kinesis, dict) else {}
        sequence = kinesis.get("sequenceNumber")
        # Lambda's itemIdentifier for a retry
        self.sequence = sequence if type(sequence) is str else _sequence(sequence, index)
        # eventID ("shardId-…:sequence") is unique per stream; sequence numbers only per shard
        event_id = record.get("eventID") if isinstance(record, dict) else None
        self.key = event_id if type(event_id) is str and event_id else self.sequence
        self.partition = kinesis.get("partitionKey")

    def user_record(self, sub: int, partition: str | None) -> _Source:
        """User record ``sub`` of this KPL aggregate: retried with it (same sequence number),
        keyed apart (the eventID and the subsequence number)."""
        source = object.__new__(_Source)
        source.sequence = self.sequence
        source.key = f"{self.key}:{sub}"
        source.partition = self.partition if partition is None else partition
        return source

    @property
    def partition_key(self) -> str:
        """For an error record: the input's own key when it is a valid one."""
        return safe_partition_key(self.partition, self.sequence)


def _sequence(raw: Any, index: int) -> str:
    return str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else f"missing-{index}"


def safe_partition_key(candidate: Any, fallback: str) -> str:
    """Kinesis takes 1-256 Unicode characters; anything else would fail the whole call."""
    if isinstance(candidate, str) and 1 <= len(candidate) <= MAX_PARTITION_KEY:
        try:
            candidate.encode("utf-8")
            return candidate
        except UnicodeEncodeError:  # a lone surrogate
            pass
    return fallback[:MAX_PARTITION_KEY] or "unknown"


def _decode(record: Any) -> bytes:
    kinesis = record.get("kinesis") if isinstance(record, dict) else None
    if not isinstance(kinesis, dict) or "data" not in kinesis:
        raise InvalidRecord(None, "record has no kinesis.data")
    try:
        return base64.b64decode(kinesis["data"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidRecord(None, "data is not base64") from None


def _raw_data(record: Any) -> bytes:
    """What an undecodable record carried, for its error record."""
    kinesis = record.get("kinesis") if isinstance(record, dict) else None
    data = kinesis.get("data", "") if isinstance(kinesis, dict) else ""
    return str(data)[:MAX_ERROR_PAYLOAD].encode("utf-8", "replace")


class _Valid:
    __slots__ = ("features", "request_id", "source", "student_id")

    def __init__(
        self, source: _Source, student_id: int | str, request_id: str, features: list[float]
    ) -> None:
        self.source, self.student_id = source, student_id
        self.request_id, self.features = request_id, features


def _problem(reason: str) -> dict[str, Any]:
    return {"errors": [{"index": None, "field": None, "reason": reason}]}


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
    def handle_kinesis(self, records: Sequence[Any]) -> BatchOutcome:
        """Score a Lambda batch. Nothing a record carries can make this raise: a record
        that cannot be decoded, validated or encoded becomes an error record. Nor can the
        model: if scoring the batch fails, its valid records are reported for retry."""
        if self.sink is None:
            raise RuntimeError("no output streams configured for Kinesis events")
        predictor = self.provider.predictor
        started = time.perf_counter()
        at = self.now()
        valid: list[_Valid] = []
        errors: list[Entry] = []
        extra = aggregated = 0  # user records beyond one per Kinesis record; aggregates
        for index, record in enumerate(records):
            source = _Source(record, index)
            data = b""
            try:
                data = _decode(record)
                if data[:4] == MAGIC:  # the one check plain records pay
                    aggregate = deaggregate(data, max(0, MAX_USER_RECORDS - index - extra))
                    if aggregate is not None:
                        aggregated += 1
                        extra += self._split(aggregate, data, source, predictor, valid, errors, at)
                        continue
                student_id, request_id, student = _message(data)
                features = predictor.parse(student)
            except InvalidRecord as invalid:
                errors.append(self._error(invalid, data or _raw_data(record), source, at))
                continue
            except Exception as exc:  # noqa: BLE001 - a poison record must not fail the batch
                unexpected = InvalidRecord(None, f"unexpected {type(exc).__name__} while decoding")
                errors.append(self._error(unexpected, data or _raw_data(record), source, at))
                continue
            valid.append(_Valid(source, student_id, request_id or source.key, features))
        predictions, unscored = self._score(predictor, valid, errors, at)
        failed = set(self.sink.put(self.predictions_stream, predictions))
        failed |= set(self.sink.put(self.errors_stream, errors))
        failed |= set(unscored)
        written = sum(p.source_sequence not in failed for p in predictions)
        errors_written = sum(e.source_sequence not in failed for e in errors)
        return BatchOutcome(
            records=len(records) + extra,
            predictions=written,
            errors=errors_written,
            failures=tuple(sorted(failed, key=lambda s: (len(s), s))),
            model_version=predictor.version,
            milliseconds=(time.perf_counter() - started) * 1000,
            failed=len(predictions) + len(errors) - written - errors_written + len(unscored),
            aggregated=aggregated,
            scoring_failures=len(unscored),
        )

    def _score(
        self, predictor: Predictor, valid: list[_Valid], errors: list[Entry], at: str
    ) -> tuple[list[Entry], list[str]]:
        """The predictions of the valid records (an encoding error adds to ``errors``), and
        the sequence numbers the model failed to score: the whole batch if scoring raised
        or a label is out of range, a record whose probabilities are not numbers."""
        scored, unscored, fault = valid, [], ""
        try:
            labels, probabilities = predictor.predict_matrix([v.features for v in valid])
            fields = predictor.prediction_fields(labels, probabilities)
            if len(fields) != len(valid):
                raise ValueError(f"{len(fields)} predictions for {len(valid)} records")
        except Exception as exc:  # noqa: BLE001 - the model's fault, not the records': retry
            scored, unscored, fields = [], [v.source.sequence for v in valid], []
            fault = f"{type(exc).__name__}: {str(exc)[:500]}"
        predictions: list[Entry] = []
        for item, prediction in zip(scored, fields, strict=True):
            try:
                predictions.append(self._prediction(predictor, item, prediction, at))
            except InvalidModelOutput as exc:  # a probability that is not a number: retry
                unscored.append(item.source.sequence)
                fault = fault or str(exc)
            except Exception as exc:  # noqa: BLE001 - accounted for as an error record
                unexpected = InvalidRecord(None, f"unexpected {type(exc).__name__} while encoding")
                errors.append(self._error(unexpected, b"", item.source, at))
        if unscored:
            log.error(
                "model %s failed to score %d of %d valid records (%s); reported for retry",
                predictor.version, len(unscored), len(valid), fault,
            )  # fmt: skip
        return predictions, unscored

    def _split(
        self,
        aggregate: Aggregate,
        data: bytes,
        source: _Source,
        predictor: Predictor,
        valid: list[_Valid],
        errors: list[Entry],
        at: str,
    ) -> int:
        """Read each user record of a KPL aggregate into ``valid`` or ``errors``, as a plain
        record would be; return how many more user records than one this makes."""
        if aggregate.problem is not None:  # it cannot be split: one error record for it all
            errors.append(self._error(InvalidRecord(None, aggregate.problem), data, source, at))
            return 0
        for sub, user in enumerate(aggregate.records):
            part = source.user_record(sub, user.partition_key)
            try:
                if user.problem is not None:
                    raise InvalidRecord(None, user.problem)
                student_id, request_id, student = _message(user.data)
                features = predictor.parse(student)
            except InvalidRecord as invalid:
                errors.append(self._error(invalid, user.data, part, at))
                continue
            except Exception as exc:  # noqa: BLE001 - a poison user record must not fail the batch
                unexpected = InvalidRecord(None, f"unexpected {type(exc).__name__} while decoding")
                errors.append(self._error(unexpected, user.data, part, at))
                continue
            valid.append(_Valid(part, student_id, request_id or part.key, features))
        return len(aggregate.records) - 1

    def _prediction(
        self, predictor: Predictor, item: _Valid, prediction: dict[str, Any], at: str
    ) -> Entry:
        body = {
            "model_name": predictor.manifest.model_name,
            "model_version": predictor.version,
            "student_id": item.student_id,
            "request_id": item.request_id,
            **prediction,
            "student": {f.name: v for f, v in zip(predictor.features, item.features, strict=True)},
            "idempotency_key": item.source.key,
            "predicted_at": at,
        }
        try:  # NaN or infinity is not JSON: the model's fault, caught here at no cost
            data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        except ValueError:
            raise InvalidModelOutput(f"probabilities not finite: {prediction}") from None
        return Entry(data, str(item.student_id), item.source.sequence)

    def _error(self, invalid: InvalidRecord, data: bytes, source: _Source, at: str) -> Entry:
        payload, encoding = _payload_text(data)
        body = {
            "reason": invalid.reason,
            "field": invalid.field,
            "payload": payload,
            "payload_encoding": encoding,
            "payload_truncated": len(data) > MAX_ERROR_PAYLOAD,
            "idempotency_key": source.key,
            "partition_key": source.partition_key,
            "model_version": self.provider.predictor.version,
            "failed_at": at,
        }
        data = json.dumps(body, separators=(",", ":")).encode()
        return Entry(data, source.partition_key, source.sequence)

    # ---- HTTP --------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return {"status": "ok", "model_version": self.provider.predictor.version}

    def model(self) -> dict[str, Any]:
        return dict(self.provider.predictor.manifest.__dict__)

    def predict_body(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """An HTTP request body: 413 over the size limit, 422 if not JSON, else as
        ``predict_payload``."""
        if len(body) > MAX_REQUEST_BYTES:
            reason = f"body of {len(body)} bytes is over the {MAX_REQUEST_BYTES}-byte limit"
            return 413, _problem(reason)
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return 422, _problem("body is not JSON (UTF-8)")
        return self.predict_payload(payload)

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
            return 422, _problem("expected a student object or a non-empty list of them")
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
        results = predictor.prediction_fields(labels, probabilities)
        body: dict[str, Any] = {"model_version": predictor.version}
        if single:
            body.update(results[0])
        else:
            body["predictions"] = results
        return 200, body
