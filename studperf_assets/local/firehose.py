"""``studperf archive``: a STAND-IN for Kinesis Data Firehose, for the local platform only.

In AWS, two Firehose delivery streams (``terraform/modules/archive``) copy the predictions
and errors streams into the monitoring bucket. moto's Firehose does not do that: in server
mode (moto 5.2) a delivery stream with a Kinesis source never reads its stream, and a direct
PutRecord is written as one uncompressed object under the unexpanded prefix. So locally this
process does Firehose's job, in Firehose's layout (``studperf_assets.lib.archive``):

- keys ``archive/<kind>/yyyy/MM/dd/HH/<delivery stream>-1-yyyy-MM-dd-HH-mm-ss-<uuid>.gz``,
  the time being the approximate arrival (UTC) of the object's oldest record;
- GZIP JSON lines, one record per line, as Firehose with AppendDelimiterToRecord writes;
- one object per shard per buffer: when ``buffer_seconds`` have passed since the buffer's
  first record, or it holds ``buffer_bytes`` (Firehose's buffering hints; Firehose
  buffers across shards, this stand-in per shard, so that an object is one shard's range).

Exactly once per record, across crashes: the ``<uuid>`` is derived from the stream, shard and
first and last sequence numbers, so the same records always make the same key. Before an
object is written its range is recorded as pending in the checkpoint file; after the write
(durable: fsync and rename in a folder, a completed PUT in S3) the shard's checkpoint moves
past it and the pending range is cleared, in one write. A stand-in that dies between the two
finds the pending range when it next reads the shard, reads exactly that range again and
writes the same key (an overwrite of identical bytes), then checkpoints. Records read but not
yet written are only in memory; they are read again from the checkpoint.

Reading is the local poller's (``poller.Checkpoints``, ``leases.ShardLeases``): one reader
per shard per home, a recreated stream read from its start, an unreachable endpoint ridden
out for ``outage_budget`` seconds. SIGTERM or SIGINT writes what is buffered, then exits.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from studperf_assets.lib.archive import (
    deterministic_name,
    encode_records,
    kind_prefix,
    object_key,
)
from studperf_assets.local.poller import OUTAGE_ERRORS, Checkpoints, OutageTooLong

if TYPE_CHECKING:
    from studperf_assets.lib.archive import ArchiveSource
    from studperf_assets.local.leases import ShardLeases

log = logging.getLogger("studperf.archive")

DEFAULT_BUFFER_SECONDS = 60.0  # Firehose's default buffer interval is 300 s; ours: terraform
DEFAULT_BUFFER_BYTES = 5 * 1024 * 1024
PENDING = "{shard}/pending"  # checkpoint key of a shard's object being written


@dataclass
class ArchiveStats:
    records: int = 0  # records written to objects
    objects: int = 0
    recovered_objects: int = 0  # pending objects written again after a crash
    outage_retries: int = 0
    per_kind: dict[str, int] = field(default_factory=dict)


@dataclass
class _Buffer:
    records: list[dict[str, Any]] = field(default_factory=list)
    size: int = 0
    started: float = 0.0  # clock() when its first record was read


class FirehoseStandIn:
    """Archives one Kinesis stream (``kind`` predictions or errors) into ``archive``."""

    def __init__(
        self,
        client: Any,
        stream: str,
        kind: str,
        archive: ArchiveSource,
        checkpoints: Checkpoints,
        leases: ShardLeases | None = None,
        delivery_stream: str | None = None,
        buffer_seconds: float = DEFAULT_BUFFER_SECONDS,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        read_limit: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        stats: ArchiveStats | None = None,
    ) -> None:
        kind_prefix(kind)  # a kind the archive knows
        self.client = client
        self.stream = stream
        self.kind = kind
        self.archive = archive
        self.checkpoints = checkpoints
        self.leases = leases
        self.delivery_stream = delivery_stream or f"{stream}-archive"
        self.buffer_seconds = buffer_seconds
        self.buffer_bytes = buffer_bytes
        self.read_limit = read_limit
        self.clock = clock
        self.stats = stats or ArchiveStats()
        self.iterators: dict[str, str | None] = {}
        self.buffers: dict[str, _Buffer] = {}
        description = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        identity = (
            f"{description['StreamARN']}@{description['StreamCreationTimestamp'].timestamp():.0f}"
        )
        if not checkpoints.bind(stream, identity):
            log.warning("stream %s was recreated: archiving it from its start", stream)

    # ---- reading -------------------------------------------------------------------------
    def _shards(self) -> list[str]:
        shards = self.client.list_shards(StreamName=self.stream)["Shards"]
        return [s["ShardId"] for s in shards]

    def _iterator(self, shard: str, at: str | None = None) -> str:
        if at is not None:
            kwargs = {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": at}
        elif (done := self.checkpoints.get(self.stream, shard)) is not None:
            kwargs = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": done}
        else:
            kwargs = {"ShardIteratorType": "TRIM_HORIZON"}
        response = self.client.get_shard_iterator(StreamName=self.stream, ShardId=shard, **kwargs)
        return str(response["ShardIterator"])

    def poll_once(self) -> int:
        """One read per held shard; writes the buffers that are due. Returns records read."""
        read = 0
        for shard in self._shards():
            if self.leases is not None and not self.leases.hold(shard):
                continue
            if shard not in self.iterators:  # (re)starting the shard from its checkpoint
                self._finish_pending(shard)
                self.iterators[shard] = self._iterator(shard)
            iterator = self.iterators[shard]
            if iterator is None:  # a closed shard, read to its end
                continue
            response = self.client.get_records(ShardIterator=iterator, Limit=self.read_limit)
            self.iterators[shard] = response.get("NextShardIterator")
            records = response["Records"]
            if records:
                buffer = self.buffers.setdefault(shard, _Buffer())
                if not buffer.records:
                    buffer.started = self.clock()
                buffer.records += records
                buffer.size += sum(len(r["Data"]) for r in records)
                read += len(records)
        self.flush(force=False)
        return read

    # ---- writing -------------------------------------------------------------------------
    def flush(self, force: bool = True) -> int:
        """Write the buffers that are due (all of them with ``force``); objects written."""
        written = 0
        now = self.clock()
        for shard, buffer in list(self.buffers.items()):
            if not buffer.records:
                continue
            due = buffer.size >= self.buffer_bytes or now - buffer.started >= self.buffer_seconds
            if force or due:
                self._write(shard, buffer.records)
                del self.buffers[shard]
                written += 1
        return written

    def _key(self, shard: str, records: Sequence[dict[str, Any]]) -> str:
        first, last = records[0]["SequenceNumber"], records[-1]["SequenceNumber"]
        oldest: datetime = min(r["ApproximateArrivalTimestamp"] for r in records)
        name = deterministic_name(self.stream, shard, first, last)
        return object_key(self.kind, self.delivery_stream, oldest, name)

    def _write(self, shard: str, records: Sequence[dict[str, Any]]) -> None:
        first, last = records[0]["SequenceNumber"], records[-1]["SequenceNumber"]
        key = self._key(shard, records)
        pending = json.dumps({"first": first, "last": last, "key": key})
        self.checkpoints.set(self.stream, PENDING.format(shard=shard), pending)
        self.archive.put_bytes(key, encode_records(r["Data"] for r in records))
        self.checkpoints.update(self.stream, {shard: last, PENDING.format(shard=shard): ""})
        self.stats.objects += 1
        self.stats.records += len(records)
        self.stats.per_kind[self.kind] = self.stats.per_kind.get(self.kind, 0) + len(records)
        log.debug("%s %s: %d records to %s", self.stream, shard, len(records), key)

    def _finish_pending(self, shard: str) -> None:
        """Write again the object a crash may have left written but not checkpointed: the
        same records, so the same key and bytes."""
        pending = self.checkpoints.get(self.stream, PENDING.format(shard=shard))
        if not pending:
            return
        intent = json.loads(pending)
        records: list[dict[str, Any]] = []
        iterator: str | None = self._iterator(shard, at=intent["first"])
        while iterator and not (records and records[-1]["SequenceNumber"] == intent["last"]):
            response = self.client.get_records(ShardIterator=iterator, Limit=self.read_limit)
            batch = response["Records"]
            if not batch and not response.get("MillisBehindLatest"):
                break
            records += [r for r in batch if int(r["SequenceNumber"]) <= int(intent["last"])]
            iterator = response.get("NextShardIterator")
        if not records or records[-1]["SequenceNumber"] != intent["last"]:
            raise RuntimeError(
                f"{self.stream} {shard}: the pending object {intent['key']} holds records "
                f"{intent['first']}..{intent['last']} that the stream no longer has"
            )
        if self._key(shard, records) != intent["key"]:
            raise RuntimeError(
                f"{self.stream} {shard}: re-read records do not make {intent['key']}"
            )
        log.warning(
            "%s %s: writing %s again (the last writer stopped before its checkpoint)",
            self.stream, shard, intent["key"],
        )  # fmt: skip
        self._write(shard, records)
        self.stats.recovered_objects += 1

    def reset(self) -> None:
        """Forget iterators and buffers (after an outage): each shard is read again from its
        checkpoint, finishing its pending object first."""
        self.iterators.clear()
        self.buffers.clear()


def run(
    standins: Sequence[FirehoseStandIn],
    until_idle: int | None = None,
    poll_interval: float = 0.5,
    outage_budget: float = 300.0,
    stopping: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Poll every stand-in until ``until_idle`` consecutive empty polls (then write what is
    buffered) or ``stopping()`` (likewise). An endpoint failing for longer than
    ``outage_budget`` raises OutageTooLong; what was buffered is read again on restart."""
    idle = 0
    outage_started: float | None = None
    attempt = 0
    while not stopping():
        try:
            read = sum(s.poll_once() for s in standins)
            outage_started, attempt = None, 0
        except OUTAGE_ERRORS as exc:
            now = clock()
            outage_started = now if outage_started is None else outage_started
            if now - outage_started >= outage_budget:
                raise OutageTooLong(
                    f"archive: endpoint failing for {now - outage_started:.0f}s "
                    f"(budget {outage_budget:.0f}s): {exc}"
                ) from exc
            attempt += 1
            delay = min(10.0, 0.5 * 2 ** min(attempt, 5))
            log.warning("archive: %s: %s; retry in %.1fs", type(exc).__name__, exc, delay)
            for standin in standins:
                standin.stats.outage_retries += 1
                standin.reset()
            sleep(delay)
            continue
        idle = 0 if read else idle + 1
        if until_idle is not None and idle >= until_idle:
            break
        if not read:
            sleep(poll_interval)
    for standin in standins:
        standin.flush(force=True)
