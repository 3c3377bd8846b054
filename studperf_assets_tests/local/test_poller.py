"""The poller's readers: one thread per shard, each in order, with its own retries and
checkpoint. On an in-memory Kinesis (the moto-backed tests of the poller are in
``lambda_service/test_streams_moto.py``). Concurrency is shown with events a handler waits
on, never with timing: the waits' timeouts only keep a broken poller from hanging the run."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from studperf_assets.local.poller import Checkpoints, KinesisPoller
from studperf_assets.local.stream_report import StreamReport

WAIT = 30.0  # seconds: only a broken poller gets near it


class MemoryStream:
    """One stream's shards in memory, read as GetRecords reads them."""

    def __init__(self, records_per_shard: dict[str, int]) -> None:
        self.shards = {
            shard: [str(1000 * (n + 1) + i) for i in range(count)]
            for n, (shard, count) in enumerate(records_per_shard.items())
        }
        self.meta = SimpleNamespace(region_name="us-east-1")
        self.lock = threading.Lock()

    def describe_stream_summary(self, StreamName: str) -> dict[str, Any]:
        return {
            "StreamDescriptionSummary": {
                "StreamARN": f"arn:aws:kinesis:us-east-1:000000000000:stream/{StreamName}",
                "StreamCreationTimestamp": datetime(2026, 1, 1, tzinfo=UTC),
            }
        }

    def list_shards(self, StreamName: str) -> dict[str, Any]:
        return {"Shards": [{"ShardId": shard} for shard in self.shards]}

    def get_shard_iterator(self, StreamName: str, ShardId: str, **kwargs: Any) -> dict[str, Any]:
        sequences = self.shards[ShardId]
        kind = kwargs["ShardIteratorType"]
        if kind == "TRIM_HORIZON":
            position = 0
        elif kind == "AT_SEQUENCE_NUMBER":
            position = sequences.index(kwargs["StartingSequenceNumber"])
        else:  # AFTER_SEQUENCE_NUMBER
            position = sequences.index(kwargs["StartingSequenceNumber"]) + 1
        return {"ShardIterator": f"{ShardId}|{position}"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        shard, position = ShardIterator.split("|")
        start = int(position)
        chosen = self.shards[shard][start : start + Limit]
        records = [
            {
                "Data": b"{}",
                "PartitionKey": "k",
                "SequenceNumber": sequence,
                "ApproximateArrivalTimestamp": datetime(2026, 1, 1, tzinfo=UTC),
            }
            for sequence in chosen
        ]
        return {"Records": records, "NextShardIterator": f"{shard}|{start + len(chosen)}"}


class Deliveries:
    """What a handler was given, per shard, in order (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches: dict[str, list[list[str]]] = {}

    def add(self, event: dict[str, Any]) -> tuple[str, list[str]]:
        shard = event["Records"][0]["eventID"].split(":")[0]
        sequences = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
        with self.lock:
            self.batches.setdefault(shard, []).append(sequences)
        return shard, sequences

    def flat(self, shard: str) -> list[str]:
        return [s for batch in self.batches.get(shard, []) for s in batch]


def poller(stream: MemoryStream, handler: Any, tmp_path: Path, **kwargs: Any) -> KinesisPoller:
    return KinesisPoller(
        stream, "in", handler, checkpoints=Checkpoints(tmp_path / "checkpoints.json"),
        sleep=lambda _s: None, **kwargs,
    )  # fmt: skip


def test_a_handler_blocked_on_one_shard_does_not_stop_the_other(tmp_path: Path) -> None:
    """Shard A's first batch waits until shard B has delivered every batch it has: with one
    loop over the shards, B would wait for A and the run would never finish."""
    stream = MemoryStream({"shard-a": 10, "shard-b": 30})
    seen = Deliveries()
    b_done = threading.Event()
    a_waited: list[bool] = []

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        shard, sequences = seen.add(event)
        if shard == "shard-a" and not a_waited:
            a_waited.append(b_done.wait(WAIT))
        if shard == "shard-b" and sequences[-1] == stream.shards["shard-b"][-1]:
            b_done.set()
        return {"batchItemFailures": []}

    stats = poller(stream, handler, tmp_path, batch_size=10).run(until_idle=1, poll_interval=0)
    assert a_waited == [True]  # B finished all three of its batches while A's first was held
    assert seen.batches["shard-b"] == [stream.shards["shard-b"][i : i + 10] for i in (0, 10, 20)]
    assert seen.flat("shard-a") == stream.shards["shard-a"]
    assert stats.records == 40 and stats.per_shard == {"shard-a": 10, "shard-b": 30}


def test_a_failure_on_one_shard_redelivers_only_that_shards_records(tmp_path: Path) -> None:
    """Shard A's first batch reports its 4th record failed once: A is re-read from it, and
    shard B's records, read meanwhile, are each delivered once."""
    stream = MemoryStream({"shard-a": 12, "shard-b": 12})
    seen = Deliveries()
    failed: list[str] = []

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        shard, sequences = seen.add(event)
        if shard == "shard-a" and not failed:
            failed.append(sequences[3])
            return {"batchItemFailures": [{"itemIdentifier": sequences[3]}]}
        return {"batchItemFailures": []}

    checkpoints = Checkpoints(tmp_path / "checkpoints.json")
    stats = KinesisPoller(
        stream, "in", handler, batch_size=5, checkpoints=checkpoints, sleep=lambda _s: None
    ).run(until_idle=1, poll_interval=0)
    a, b = stream.shards["shard-a"], stream.shards["shard-b"]
    assert seen.flat("shard-b") == b  # once each, in order
    assert seen.batches["shard-a"][:2] == [a[0:5], a[3:8]]  # re-read from the failed record
    assert seen.flat("shard-a")[5:] == a[3:]
    assert stats.retried_batches == 1 and stats.discarded_records == 0
    assert checkpoints.get("in", "shard-a") == a[-1] and checkpoints.get("in", "shard-b") == b[-1]


def test_each_shard_is_delivered_in_order_while_shards_interleave(tmp_path: Path) -> None:
    """Two shards' readers take turns (each batch waits for the other shard's batch of the
    same rank): both are in flight at once, and each shard's records arrive in order."""
    stream = MemoryStream({"shard-a": 40, "shard-b": 40})
    seen = Deliveries()
    barrier = threading.Barrier(2, timeout=WAIT)

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        seen.add(event)
        barrier.wait()  # raises BrokenBarrierError (a function error) if the other never comes
        return {"batchItemFailures": []}

    stats = poller(stream, handler, tmp_path, batch_size=4).run(until_idle=1, poll_interval=0)
    assert stats.function_errors == 0 and stats.batches == 20
    for shard, sequences in stream.shards.items():
        assert seen.flat(shard) == sequences


def test_stopping_lets_each_reader_finish_and_checkpoint_its_batch(tmp_path: Path) -> None:
    """As SIGTERM does (``studperf stream`` sets ``stopping``): the batch in hand on each shard
    is finished and checkpointed; nothing after it is read."""
    stream = MemoryStream({"shard-a": 20, "shard-b": 20})
    entered = threading.Barrier(3, timeout=WAIT)  # both readers' first batches and this test
    release = threading.Event()

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        entered.wait()
        release.wait(WAIT)
        return {"batchItemFailures": []}

    checkpoints = Checkpoints(tmp_path / "checkpoints.json")
    consumer = KinesisPoller(stream, "in", handler, batch_size=5, checkpoints=checkpoints)
    result: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: result.update(stats=consumer.run()))
    runner.start()
    entered.wait()  # both shards are in the middle of a batch
    consumer.stopping = True
    release.set()
    runner.join(WAIT)
    assert not runner.is_alive()
    assert result["stats"].records == 10 and result["stats"].batches == 2
    for shard, sequences in stream.shards.items():
        assert checkpoints.get("in", shard) == sequences[4]
    assert not [t for t in threading.enumerate() if t.name.startswith("in/")]  # readers gone


def test_a_consumer_reads_at_most_max_readers_shards(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stream = MemoryStream({"shard-a": 3, "shard-b": 3, "shard-c": 3})
    seen = Deliveries()

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        seen.add(event)
        return {"batchItemFailures": []}

    with caplog.at_level(logging.WARNING, logger="studperf.stream"):
        stats = poller(stream, handler, tmp_path, max_readers=2).run(until_idle=1, poll_interval=0)
    assert set(seen.batches) == {"shard-a", "shard-b"} and stats.records == 6
    assert "shard-c: not read here: this consumer reads at most 2 shards" in caplog.text


def test_the_minute_report_counts_batches_from_every_reader() -> None:
    from lambda_service.service import BatchOutcome

    report = StreamReport(logging.getLogger("test.report"))
    outcome = BatchOutcome(records=3, predictions=2, errors=1, model_version="v1")
    start = threading.Barrier(4, timeout=WAIT)

    def reader() -> None:
        start.wait()
        for _ in range(500):
            report.batch(outcome)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    window = report.window
    assert (window.batches, window.records, window.errors) == (2000, 6000, 2000)


def test_studperf_stream_reads_with_the_pollers_defaults() -> None:
    from studperf_assets.cli.main import build_parser
    from studperf_assets.local import poller

    args = build_parser().parse_args(["stream", "--input-stream", "in"])
    assert args.batch_size == poller.DEFAULT_BATCH_SIZE == 10_000  # GetRecords' maximum
    assert args.max_readers == poller.DEFAULT_MAX_READERS
