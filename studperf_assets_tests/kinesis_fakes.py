"""Real, small Kinesis clients for tests: an in-memory one and a fault-injecting wrapper.

Both speak PutRecords' actual request/response shape; the wrapper sits in front of a real
boto3 client (moto server) and fails chosen calls or entries the way Kinesis does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any


class MemoryKinesis:
    """Collects PutRecords calls per stream."""

    def __init__(self) -> None:
        self.streams: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[tuple[str, int]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        """Validates the call as Kinesis does: one bad entry rejects the whole call."""
        self.calls.append((StreamName, len(Records)))
        for record in Records:
            key = record["PartitionKey"]
            if not isinstance(key, str) or not 1 <= len(key) <= 256:
                raise ValueError(f"InvalidArgumentException: partition key of {len(key)} chars")
            key.encode("utf-8")  # a lone surrogate cannot be sent: UnicodeEncodeError
            if len(record["Data"]) + len(key.encode()) > 1024 * 1024:
                raise ValueError("InvalidArgumentException: record over 1 MiB")
        self.streams.setdefault(StreamName, []).extend(Records)
        return {
            "FailedRecordCount": 0,
            "Records": [{"SequenceNumber": "1", "ShardId": "s"} for _ in Records],
        }

    def bodies(self, stream: str) -> list[dict[str, Any]]:
        return [json.loads(r["Data"]) for r in self.streams.get(stream, [])]


class FlakyKinesis:
    """Wraps a client; throttles every other entry for ``failing_calls`` calls, or raises."""

    def __init__(
        self,
        inner: Any,
        failing_calls: int,
        raise_instead: bool = False,
        streams: set[str] | None = None,
    ) -> None:
        self.inner = inner
        self.failing_calls = failing_calls
        self.raise_instead = raise_instead
        self.streams = streams
        self.calls: list[tuple[str, int]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append((StreamName, len(Records)))
        if (self.streams is None or StreamName in self.streams) and self.failing_calls > 0:
            self.failing_calls -= 1
            if self.raise_instead:
                raise ConnectionError("injected: endpoint unreachable")
            passed = Records[1::2]
            response = (
                self.inner.put_records(StreamName=StreamName, Records=passed)
                if passed
                else {"Records": []}
            )
            results: list[dict[str, Any]] = []
            written = iter(response["Records"])
            for index in range(len(Records)):
                if index % 2 == 0:
                    results.append(
                        {
                            "ErrorCode": "ProvisionedThroughputExceededException",
                            "ErrorMessage": "injected",
                        }
                    )
                else:
                    results.append(next(written))
            return {"FailedRecordCount": (len(Records) + 1) // 2, "Records": results}
        return dict(self.inner.put_records(StreamName=StreamName, Records=Records))


class RejectingKinesis:
    """Wraps a client; every call throttles the entries ``rejects`` picks, the rest go on."""

    def __init__(self, inner: Any, rejects: Callable[[dict[str, Any]], bool]) -> None:
        self.inner, self.rejects = inner, rejects

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        passed = [r for r in Records if not self.rejects(r)]
        written = iter(
            self.inner.put_records(StreamName=StreamName, Records=passed)["Records"]
            if passed
            else []
        )
        throttled = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "x"}
        results = [throttled if self.rejects(r) else next(written) for r in Records]
        return {"FailedRecordCount": len(Records) - len(passed), "Records": results}


def kinesis_record(payload: bytes, sequence: int, partition_key: str = "pk") -> dict[str, Any]:
    """One record as Lambda delivers it from Kinesis."""
    return {
        "kinesis": {
            "partitionKey": partition_key,
            "sequenceNumber": str(sequence),
            "data": base64.b64encode(payload).decode("ascii"),
            "approximateArrivalTimestamp": 1_700_000_000.0,
        },
        "eventSource": "aws:kinesis",
        "eventID": event_id(sequence),
    }


def reference_messages() -> Any:
    """AWS's own KPL aggregation format (aws-kinesis-agg's generated protobuf module); the
    reference producer of the tests. Importing the package inserts its own folder first on
    ``sys.path``, which the tests put back as it was."""
    saved = list(sys.path)
    try:
        from aws_kinesis_agg import messages_pb2
    finally:
        sys.path[:] = saved
    return messages_pb2


def kpl_aggregate(
    user_records: Sequence[tuple[str, bytes]], explicit_hash_keys: Sequence[str | None] = ()
) -> bytes:
    """One KPL aggregated record of (partition key, data) user records, made by AWS's own
    encoder (aws-kinesis-agg's RecordAggregator)."""
    saved = list(sys.path)
    try:
        from aws_kinesis_agg.aggregator import RecordAggregator
    finally:
        sys.path[:] = saved
    aggregator = RecordAggregator()
    hash_keys = list(explicit_hash_keys) or [None] * len(user_records)
    for (key, data), hash_key in zip(user_records, hash_keys, strict=True):
        assert aggregator.add_user_record(key, data, hash_key) is None, "over 1 MiB"
    _, _, blob = aggregator.clear_and_get().get_contents()
    return bytes(blob)


def kpl_frame(body: bytes) -> bytes:
    """Any bytes framed as a KPL aggregate: magic, the bytes, their MD5."""
    return b"\xf3\x89\x9a\xc2" + body + hashlib.md5(body).digest()


def event_id(sequence: int) -> str:
    return f"shardId-000000000000:{sequence}"


STUDENT = {
    "ParentalEducation": 2,
    "StudyTimeWeekly": 15.2,
    "Absences": 4,
    "Tutoring": 1,
    "ParentalSupport": 3,
    "Extracurricular": 1,
    "Sports": 0,
    "Music": 0,
    "Volunteering": 1,
}


def student_message(student_id: int, **overrides: Any) -> bytes:
    return json.dumps(
        {"student_id": student_id, "student": {**STUDENT, "Age": 17, **overrides}}
    ).encode()


def create_stream(client: Any, name: str, shards: int = 1) -> None:
    client.create_stream(StreamName=name, ShardCount=shards)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1})
