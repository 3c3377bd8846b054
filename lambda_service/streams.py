"""Writing to Kinesis: PutRecords in chunks of 500, retrying only the failed entries.

Entries that still fail after the retries are handed back by their source sequence
numbers, so the caller can report them to Lambda (ReportBatchItemFailures): nothing is
dropped silently.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("studperf.streams")

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024


@dataclass(frozen=True)
class Entry:
    data: bytes
    partition_key: str
    source_sequence: str


class RecordSink(Protocol):
    def put(self, stream: str, entries: Sequence[Entry]) -> list[str]:
        """Write entries; return the source sequence numbers that could not be written."""


class KinesisSink:
    def __init__(
        self,
        client: Any,
        max_attempts: int = 5,
        base_delay: float = 0.05,
        max_delay: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep

    def put(self, stream: str, entries: Sequence[Entry]) -> list[str]:
        failed: list[str] = []
        for chunk in _chunks(entries):
            failed += self._put_chunk(stream, chunk)
        return failed

    def _put_chunk(self, stream: str, pending: list[Entry]) -> list[str]:
        for attempt in range(self.max_attempts):
            if attempt:
                # exponential backoff with full jitter
                self.sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt)))
            try:
                response = self.client.put_records(
                    StreamName=stream,
                    Records=[{"Data": e.data, "PartitionKey": e.partition_key} for e in pending],
                )
            except Exception as exc:  # noqa: BLE001 - throttled, unreachable: retry all
                log.warning("PutRecords to %s failed (attempt %d): %s", stream, attempt + 1, exc)
                continue
            if not response.get("FailedRecordCount"):
                return []
            pending = [
                entry
                for entry, result in zip(pending, response["Records"], strict=True)
                if result.get("ErrorCode")
            ]
            log.warning("%d entries to %s failed (attempt %d)", len(pending), stream, attempt + 1)
        return [e.source_sequence for e in pending]


def _chunks(entries: Sequence[Entry]) -> list[list[Entry]]:
    """Groups within PutRecords' limits: 500 records and 5 MiB a call."""
    chunks: list[list[Entry]] = []
    current: list[Entry] = []
    size = 0
    for entry in entries:
        entry_size = len(entry.data) + len(entry.partition_key)
        if current and (
            len(current) == MAX_RECORDS_PER_CALL or size + entry_size > MAX_BYTES_PER_CALL
        ):
            chunks.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry_size
    if current:
        chunks.append(current)
    return chunks
