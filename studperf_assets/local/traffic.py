"""``studperf simulate``: synthetic students into the input stream, labels later.

Students come from ``StudentGenerator`` (fitted on the training split only). Each
invocation reserves a block of StudentIDs in the monitoring store first, so no two
simulations (concurrent or years apart) ever share an ID, and every message carries a
``request_id`` that the student's label names. Records go out in PutRecords calls of up to
500 at the configured rate; entries Kinesis rejects are retried until accepted (bounded),
so the count sent is the count asked for. Each student's ground truth is written to the
monitoring store, available after ``label_delay`` seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pandas as pd

from studperf_assets.lib import data
from studperf_assets.lib.labels import REQUEST_ID, SCHEDULE_HORIZON, FrameStore, write_labels
from studperf_assets.lib.simulation import (
    FIRST_SYNTHETIC_ID,
    Drift,
    StudentGenerator,
    messages,
    request_id_for,
)

ID_RESERVATIONS = "simulations/ids/"


class ReservingStore(FrameStore, Protocol):
    def put_bytes_if_absent(self, key: str, data: bytes) -> bool: ...


@dataclass
class TrafficReport:
    sent: int = 0
    retried: int = 0
    labels_written: int = 0
    seconds: float = 0.0


def training_generator(seed: int = 0, source: bytes | None = None) -> StudentGenerator:
    """A generator fitted on the reference split's training rows, and nothing else."""
    raw = data.parse_raw_csv(source or data.bundled_dataset_path().read_bytes())
    train_index = data.reference_split(data.select_features(raw))["train"].index
    return StudentGenerator(raw.loc[train_index], seed=seed)


def reserve_ids(store: ReservingStore, count: int, attempts: int = 50) -> int:
    """Reserve ``count`` consecutive StudentIDs; returns the first.

    A reservation is an object named by its first ID, created only if absent (an atomic
    create in a folder and in S3), so two simulations racing for the same block cannot
    both win: the loser re-reads the reservations and takes the next block."""
    for _ in range(attempts):
        taken = store.list_keys(ID_RESERVATIONS)
        start = FIRST_SYNTHETIC_ID
        if taken:
            start = max(start, int(json.loads(store.get_bytes(taken[-1]))["end"]))
        record = {"start": start, "end": start + count, "at": datetime.now(UTC).isoformat()}
        if store.put_bytes_if_absent(
            f"{ID_RESERVATIONS}{start:015d}.json", json.dumps(record).encode()
        ):
            return start
    raise RuntimeError(f"could not reserve {count} student IDs after {attempts} attempts")


def send(
    kinesis: Any,
    stream: str,
    rows: pd.DataFrame,
    rate: float | None = None,
    max_attempts: int = 10,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[int], None] | None = None,
) -> TrafficReport:
    """Send ``rows`` as input messages, at ``rate`` per second if given; ``progress`` is
    told how many were accepted after every PutRecords call."""
    report = TrafficReport()
    started = time.perf_counter()
    payloads = [json.dumps(m).encode() for m in messages(rows)]
    for start in range(0, len(payloads), 500):
        pending = [
            {"Data": p, "PartitionKey": str(rows["StudentID"].iloc[start + i])}
            for i, p in enumerate(payloads[start : start + 500])
        ]
        for attempt in range(max_attempts):
            response = kinesis.put_records(StreamName=stream, Records=pending)
            if not response.get("FailedRecordCount"):
                break
            pending = [
                e for e, r in zip(pending, response["Records"], strict=True) if r.get("ErrorCode")
            ]
            report.retried += len(pending)
            sleep(min(1.0, 0.05 * 2**attempt))
        else:
            raise RuntimeError(
                f"{len(pending)} records not accepted by {stream} after {max_attempts} attempts"
            )
        report.sent = min(start + 500, len(payloads))
        if progress is not None:
            progress(report.sent)
        if rate:
            ahead = report.sent / rate - (time.perf_counter() - started)
            if ahead > 0:
                sleep(ahead)
    report.seconds = time.perf_counter() - started
    return report


def simulate(
    kinesis: Any,
    stream: str,
    store: ReservingStore,
    generator: StudentGenerator,
    count: int,
    drift: Drift | None = None,
    rate: float | None = None,
    label_delay: float = 0.0,
    labels: bool = True,
    progress: Callable[[int], None] | None = None,
) -> TrafficReport:
    """Send ``count`` students with freshly reserved IDs; write their labels unless told not
    to (they arrive ``label_delay`` seconds after the last record was sent, 0 to
    ``SCHEDULE_HORIZON``: checked before anything is sent)."""
    if labels and not 0 <= label_delay <= SCHEDULE_HORIZON.total_seconds():
        raise ValueError(
            f"label_delay {label_delay:g}: labels can be delayed 0 to "
            f"{SCHEDULE_HORIZON.total_seconds():g} seconds"
        )
    rows = generator.sample(count, drift, first_id=reserve_ids(store, count))
    rows.insert(0, REQUEST_ID, [request_id_for(int(i)) for i in rows[data.ID]])
    report = send(kinesis, stream, rows, rate, progress=progress)
    if labels:
        write_labels(store, rows, datetime.now(UTC) + timedelta(seconds=label_delay))
        report.labels_written = len(rows)
    return report
