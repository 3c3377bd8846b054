"""``studperf stream``: poll a Kinesis stream and invoke ``lambda_handler`` as Lambda does.

The stand-in for Lambda's Kinesis event source mapping. Each batch becomes the event Lambda
delivers (``lambda_event``: base64 data, partition key, sequence number, arrival time, the
stream's ARN, ``eventID`` ``shardId-…:sequence``), and the handler is called with it and a
``LocalLambdaContext`` (``lambda_runtime``), in this process. The command passes
``lambda_service.handler.lambda_handler`` itself, so a record takes the path it takes in AWS:
handler, service, sink.

Batch size, starting position, a checkpoint per shard after each successful batch, and
ReportBatchItemFailures semantics: the handler's ``batchItemFailures`` decide what is
re-delivered. The shard is checkpointed before the lowest failed sequence number and re-read
from it, up to ``max_retries`` times; a batch that still fails is written to the on-failure
file (Lambda's on-failure destination), so every record is accounted for. A handler that
raises is a function error, as in Lambda: the whole batch is retried the same way, then goes
to the on-failure file; the consumer goes on (Lambda's bisecting of a failing batch is not
imitated).

Checkpoints name the stream's identity (ARN and creation time): a recreated stream is read
from its start, not from sequence numbers of the one it replaced. An unreachable endpoint
is retried with backoff for up to ``outage_budget`` seconds; only a longer outage stops
the consumer (nothing is lost either way: the checkpoint holds). Starting is ridden out the
same way (``start_riding_outages``): a consumer started while its endpoint is briefly away
waits for it instead of exiting.

Given ``leases``, the poller reads only the shards it holds the lease of: a second consumer
on the same home and stream stands by and takes a shard over when its holder dies, as
Lambda keeps one reader per shard.

Each held shard is read by a thread of its own (at most ``max_readers``; shards past that
are left to other consumers), as Lambda's event source mapping runs one invocation per
shard at a time with parallelization factor 1: a slow or failing batch on one shard does
not hold up another. Within a shard, batches are handled one after another, in order, and
the shard's retries and checkpoint are its own. The main thread finds the held shards,
starts their readers, reports (``on_poll``) and decides when to stop; stopping lets each
reader finish the batch in hand and checkpoint it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from filelock import FileLock

from studperf_assets.local.lambda_runtime import LocalLambdaContext, invocation

if TYPE_CHECKING:
    from studperf_assets.local.leases import ShardLeases

T = TypeVar("T")

log = logging.getLogger("studperf.stream")


class OutageTooLong(RuntimeError):
    """The endpoint failed for longer than the consumer's outage budget."""


def _outage_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the endpoint is unreachable or failing", not "the request is bad"."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    return (ConnectionError, HTTPClientError, ClientError, OSError)


OUTAGE_ERRORS = _outage_errors()


def _unreachable(error: BaseException | None) -> bool:
    """The endpoint did not answer, here or behind the error that wraps it (a bundle that
    cannot be fetched is a BundleError caused by the connection's error)."""
    from botocore.exceptions import ConnectionError as NoConnection

    while error is not None:
        if isinstance(error, NoConnection | ConnectionRefusedError):
            return True
        error = error.__cause__ or error.__context__
    return False


def start_riding_outages(
    start: Callable[[], T],
    what: str,
    budget: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``start()``, retried with backoff while the endpoint does not answer, for up to
    ``budget`` seconds (then OutageTooLong). Any other error is raised at once: a stream
    that does not exist is not an outage."""
    started = clock()
    attempt = 0
    while True:
        try:
            return start()
        except Exception as exc:
            if not _unreachable(exc):
                raise
            elapsed = clock() - started
            if elapsed >= budget:
                raise OutageTooLong(
                    f"{what}: endpoint not answering for {elapsed:.0f}s "
                    f"(budget {budget:.0f}s): {exc}"
                ) from exc
            attempt += 1
            delay = min(10.0, 0.5 * 2 ** min(attempt, 5))
            log.warning(
                "%s: %s: %s; retry %d in %.1fs (outage %.0fs of %.0fs budget)",
                what, type(exc).__name__, str(exc)[:200], attempt, delay, elapsed, budget,
            )  # fmt: skip
            sleep(delay)


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class PollStats:
    batches: int = 0
    records: int = 0
    retried_batches: int = 0
    discarded_records: int = 0
    function_errors: int = 0  # batches whose handler raised
    outage_retries: int = 0
    per_shard: dict[str, int] = field(default_factory=dict)


class Checkpoints:
    """Last processed sequence number per stream and shard, in a JSON file.

    Consumers of one home share the file, each writing only the shards it holds the lease
    of (``leases.ShardLeases``): every write re-reads the file under a lock and changes only
    its own shard, and every read is from the file, so a shard taken over resumes after its
    last holder's checkpoint, not after what this consumer saw at its start."""

    IDENTITY = "_stream"  # the key holding the identity of the stream the positions are of

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.data: dict[str, dict[str, str]] = {}
        self._lock = FileLock(path.with_suffix(".lock"), thread_local=False) if path else None
        # The file lock keeps other processes out; this one keeps this process's shard
        # readers apart (a FileLock shared by threads lets a second thread straight in).
        self._threads = threading.RLock()
        self._load()

    def bind(self, stream: str, identity: str) -> bool:
        """Tie a stream's positions to its identity; False (positions dropped) if they
        belonged to an earlier stream of the same name."""
        with self._threads, self._locked():
            self._load()
            positions = self.data.get(stream, {})
            if positions.get(self.IDENTITY, identity) == identity:
                positions[self.IDENTITY] = identity
                self.data[stream] = positions
                return True
            self.data[stream] = {self.IDENTITY: identity}
            self._save()
            return False

    def get(self, stream: str, shard: str) -> str | None:
        with self._threads:
            self._load()
            return self.data.get(stream, {}).get(shard)

    def set(self, stream: str, shard: str, sequence: str) -> None:
        self.update(stream, {shard: sequence})

    def update(self, stream: str, values: dict[str, str]) -> None:
        """Set several keys of a stream in one write (all or none reach the file)."""
        with self._threads, self._locked():
            self._load()
            self.data.setdefault(stream, {}).update(values)
            self._save()

    def _locked(self) -> AbstractContextManager[object]:
        if self.path is None or self._lock is None:
            return contextlib.nullcontext()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self._lock.acquire(timeout=30)

    def _load(self) -> None:
        if self.path and self.path.is_file():
            self.data = json.loads(self.path.read_text())

    def _save(self) -> None:
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=2))
            tmp.replace(self.path)


def lambda_event(
    records: list[dict[str, Any]], stream_arn: str, shard: str, region: str
) -> dict[str, Any]:
    """The event Lambda's Kinesis event source mapping would deliver."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r["PartitionKey"],
                    "sequenceNumber": r["SequenceNumber"],
                    "data": base64.b64encode(r["Data"]).decode("ascii"),
                    "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard}:{r['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "awsRegion": region,
                "eventSourceARN": stream_arn,
            }
            for r in records
        ]
    }


def failed_identifiers(response: Any) -> list[Any]:
    """The ``itemIdentifier`` of each entry of a partial batch response."""
    failures = response.get("batchItemFailures") if isinstance(response, dict) else None
    if not isinstance(failures, list):
        return []
    return [f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures]


def first_to_redeliver(records: list[dict[str, Any]], response: Any) -> int | None:
    """Where Lambda's event source mapping resumes after a handler's response, as an index
    into the batch's ``records`` (None: the batch succeeded).

    As ReportBatchItemFailures documents it: no response, an empty one, or no or an empty
    ``batchItemFailures`` is a complete success; otherwise the batch is re-delivered from the
    lowest sequence number reported. A reported ``itemIdentifier`` that is empty, missing or
    not a sequence number of the batch makes it a complete failure: from its first record."""
    identifiers = failed_identifiers(response)
    if not identifiers:
        return None
    positions = {r["SequenceNumber"]: i for i, r in enumerate(records)}
    if not all(isinstance(i, str) and i in positions for i in identifiers):
        return 0
    return min(positions[i] for i in identifiers)


DEFAULT_BATCH_SIZE = 10_000  # GetRecords' maximum; see docs/serving.md ("Batch size")
DEFAULT_MAX_READERS = 16  # shard reader threads per consumer


@dataclass
class _Reader:
    """A shard's reader thread and what the main thread reads of it."""

    shard: str
    thread: threading.Thread | None = None
    idle: int = 0  # consecutive empty reads
    error: BaseException | None = None  # what stopped it (an outage past the budget, a bug)


class KinesisPoller:
    def __init__(
        self,
        client: Any,
        stream: str,
        handler: Handler,
        batch_size: int = DEFAULT_BATCH_SIZE,
        starting_position: str = "TRIM_HORIZON",
        checkpoints: Checkpoints | None = None,
        max_retries: int = 3,
        on_failure: Path | None = None,
        sleep: Callable[[float], None] | None = None,
        outage_budget: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        leases: ShardLeases | None = None,
        max_readers: int = DEFAULT_MAX_READERS,
        shard_refresh_seconds: float = 2.0,
    ) -> None:
        self.client = client
        self.stream = stream
        self.handler = handler
        self.batch_size = batch_size
        self.starting_position = starting_position
        self.checkpoints = checkpoints or Checkpoints(None)
        self.max_retries = max_retries
        self.on_failure = on_failure
        # None: a wait that stopping cuts short (a reader backing off does not hold up SIGTERM)
        self.sleep = sleep if sleep is not None else self._halt_wait
        self.outage_budget = outage_budget
        self.clock = clock
        self.leases = leases  # None: this poller reads every shard (no other consumer)
        self.max_readers = max(1, max_readers)
        self.shard_refresh_seconds = shard_refresh_seconds
        self.held_shards = 0  # shards this poller reads (has a reader for)
        self.stopping = False  # set (e.g. from a signal handler) to stop after the batches in hand
        description = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        self.arn = description["StreamARN"]
        identity = f"{self.arn}@{description['StreamCreationTimestamp'].timestamp():.0f}"
        if not self.checkpoints.bind(stream, identity):
            log.warning("stream %s was recreated: reading it from its start", stream)
        self.region = client.meta.region_name
        self.iterators: dict[str, str | None] = {}  # each shard's: written by its reader only
        self.retries: dict[str, int] = {}  # likewise
        self.stats = PollStats()
        self._stats_lock = threading.Lock()  # stats and the on-failure file, across readers
        self._halt = threading.Event()  # tells the readers to stop after the batch in hand
        self._changed = threading.Condition()  # a reader read (or failed): the main thread looks
        self._readers: dict[str, _Reader] = {}
        self._poll_interval = 0.5
        self._beyond_cap: set[str] = set()  # shards past max_readers, logged once

    def _halt_wait(self, seconds: float) -> None:
        self._halt.wait(seconds)

    def _shards(self) -> list[str]:
        shards = self.client.list_shards(StreamName=self.stream)["Shards"]
        return [s["ShardId"] for s in shards]

    def _iterator(self, shard: str, at: str | None = None) -> str:
        if at is not None:
            kwargs = {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": at}
        elif (done := self.checkpoints.get(self.stream, shard)) is not None:
            kwargs = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": done}
        else:
            kwargs = {"ShardIteratorType": self.starting_position}
        response = self.client.get_shard_iterator(StreamName=self.stream, ShardId=shard, **kwargs)
        return str(response["ShardIterator"])

    def _held(self) -> list[str]:
        """The shards to read: those with a reader, then free ones (their lease taken) while
        there is room for a reader."""
        held = []
        for shard in self._shards():
            if shard in self._readers:
                held.append(shard)
            elif len(held) >= self.max_readers or len(self._readers) >= self.max_readers:
                if shard not in self._beyond_cap:
                    self._beyond_cap.add(shard)
                    log.warning(
                        "%s %s: not read here: this consumer reads at most %d shards",
                        self.stream, shard, self.max_readers,
                    )  # fmt: skip
            elif self.leases is None or self.leases.hold(shard):
                held.append(shard)
        return held

    def read_shard(self, shard: str) -> int:
        """One GetRecords on ``shard`` and its batch to the handler; how many records."""
        iterator = self.iterators.get(shard) or self._iterator(shard)
        response = self.client.get_records(ShardIterator=iterator, Limit=self.batch_size)
        records = response["Records"]
        self.iterators[shard] = response.get("NextShardIterator")
        if records:
            self._deliver(shard, records)
        return len(records)

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, value in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)

    def _deliver(self, shard: str, records: list[dict[str, Any]]) -> None:
        event = lambda_event(records, self.arn, shard, self.region)
        with self._stats_lock:
            self.stats.batches += 1
            self.stats.records += len(records)
            self.stats.per_shard[shard] = self.stats.per_shard.get(shard, 0) + len(records)
        condition = "batch item failures"
        try:
            context = LocalLambdaContext(region=self.region)
            with invocation(context):
                result = self.handler(event, context)
            first_failed = first_to_redeliver(records, result)
            failures = failed_identifiers(result)
        except Exception as exc:  # a function error: the whole batch fails, the consumer lives
            self._count(function_errors=1)
            condition = f"function error: {type(exc).__name__}: {str(exc)[:500]}"
            log.exception(
                "shard %s: the handler raised on a batch of %d records (a function error)",
                shard, len(records),
            )  # fmt: skip
            first_failed, failures = 0, [r["SequenceNumber"] for r in records]
        if first_failed is None:
            self.retries.pop(shard, None)
            self.checkpoints.set(self.stream, shard, records[-1]["SequenceNumber"])
            return
        lowest = records[first_failed]["SequenceNumber"]
        attempt = self.retries.get(shard, 0) + 1
        if attempt > self.max_retries:
            # Give up on this batch as Lambda does: the on-failure destination gets it.
            self._discard(shard, records[first_failed:], failures, condition)
            self.retries.pop(shard, None)
            self.checkpoints.set(self.stream, shard, records[-1]["SequenceNumber"])
            return
        self.retries[shard] = attempt
        self._count(retried_batches=1)
        if first_failed:
            self.checkpoints.set(self.stream, shard, records[first_failed - 1]["SequenceNumber"])
        self.sleep(min(2.0, 0.1 * 2**attempt))
        self.iterators[shard] = self._iterator(shard, at=lowest)

    def _discard(
        self, shard: str, records: list[dict[str, Any]], failures: list[str], condition: str
    ) -> None:
        log.error(
            "shard %s: %d records still failing after %d retries (%s): to the on-failure file",
            shard, len(records), self.max_retries, condition,
        )  # fmt: skip
        with self._stats_lock:
            self.stats.discarded_records += len(records)
            if self.on_failure:
                self.on_failure.parent.mkdir(parents=True, exist_ok=True)
                with open(self.on_failure, "a") as fh:
                    fh.write(
                        json.dumps(
                            {
                                "stream": self.stream,
                                "shard": shard,
                                "first_sequence": records[0]["SequenceNumber"],
                                "last_sequence": records[-1]["SequenceNumber"],
                                "failed_sequences": failures,
                                "records": len(records),
                                "condition": condition,
                            }
                        )
                        + "\n"
                    )

    def run(
        self,
        until_idle: int | None = None,
        poll_interval: float = 0.5,
        max_records: int | None = None,
        on_poll: Callable[[PollStats], None] | None = None,
    ) -> PollStats:
        """Read every held shard in a thread of its own until each has had ``until_idle``
        consecutive empty reads (None: forever), ``max_records`` were handed over, or
        ``stopping``; each reader finishes the batch in hand first. Raises OutageTooLong past
        the outage budget. A consumer that holds no shard is not idle: one standing by waits
        for a lease, however long. ``on_poll`` gets the stats after every read (and at least
        every ``poll_interval``), in this thread."""
        self._poll_interval = poll_interval
        self._halt.clear()
        refreshed: float | None = None
        try:
            while not self.stopping:
                now = self.clock()
                if refreshed is None or now - refreshed >= self.shard_refresh_seconds:
                    self._start_readers(self._held_riding_outages())
                    refreshed = self.clock()
                if self.stopping:
                    break
                self._raise_reader_error()
                if on_poll is not None:
                    on_poll(self.stats)
                if self._finished(until_idle, max_records):
                    break
                with self._changed:
                    self._changed.wait(timeout=min(0.25, max(poll_interval, 0.01)))
        finally:
            error = self._stop_readers()
        if error is not None:
            raise error
        return self.stats

    def _finished(self, until_idle: int | None, max_records: int | None) -> bool:
        if max_records is not None and self.stats.records >= max_records:
            return True
        if until_idle is None or not self._readers:
            return False
        with self._changed:
            return all(r.idle >= until_idle for r in self._readers.values())

    def _start_readers(self, shards: list[str]) -> None:
        for shard in shards:
            if shard not in self._readers:
                reader = self._readers[shard] = _Reader(shard)
                reader.thread = threading.Thread(
                    target=self._read_loop, args=(reader,), daemon=True,
                    name=f"{self.stream}/{shard}",
                )  # fmt: skip
                reader.thread.start()
        self.held_shards = len(self._readers)

    def _stop_readers(self) -> BaseException | None:
        """Halt the readers, wait for each to finish its batch; the first error one met."""
        self._halt.set()
        for reader in self._readers.values():
            if reader.thread is not None:
                while reader.thread.is_alive():
                    reader.thread.join(timeout=0.5)  # short joins: signals are still handled
        errors = [r.error for r in self._readers.values() if r.error is not None]
        self._readers.clear()
        self.held_shards = 0
        return errors[0] if errors else None

    def _raise_reader_error(self) -> None:
        for reader in self._readers.values():
            if reader.error is not None:
                self._halt.set()
                raise reader.error

    def _read_loop(self, reader: _Reader) -> None:
        """A shard's reader: read, deliver, repeat, in order, until halted; an unreachable or
        failing endpoint is retried with backoff (the iterator re-made from the checkpoint)
        until it answers or the outage budget is spent."""
        shard = reader.shard
        started: float | None = None
        attempt = 0
        while not (self._halt.is_set() or self.stopping):
            try:
                handled = self.read_shard(shard)
            except OUTAGE_ERRORS as exc:
                now = self.clock()
                started = now if started is None else started
                if now - started >= self.outage_budget:
                    self._fail(
                        reader,
                        OutageTooLong(
                            f"{self.stream}: endpoint failing for {now - started:.0f}s "
                            f"(budget {self.outage_budget:.0f}s): {exc}"
                        ),
                        exc,
                    )
                    return
                attempt += 1
                self._count(outage_retries=1)
                delay = min(10.0, 0.5 * 2 ** min(attempt, 5))
                log.warning(
                    "%s %s: %s: %s; retry %d in %.1fs (outage %.0fs of %.0fs budget)",
                    self.stream, shard, type(exc).__name__, str(exc)[:200], attempt, delay,
                    now - started, self.outage_budget,
                )  # fmt: skip
                self.iterators.pop(shard, None)  # it may have expired: resume from the checkpoint
                self.sleep(delay)
                continue
            except BaseException as exc:  # noqa: BLE001 - not an outage: stop the consumer, loudly
                self._fail(reader, exc, None)
                return
            started, attempt = None, 0
            with self._changed:
                reader.idle = 0 if handled else reader.idle + 1
                self._changed.notify_all()
            if not handled:
                self._halt.wait(self._poll_interval)

    def _fail(self, reader: _Reader, error: BaseException, cause: BaseException | None) -> None:
        if cause is not None:
            error.__cause__ = cause
        with self._changed:
            reader.error = error
            self._changed.notify_all()
        self._halt.set()

    def _held_riding_outages(self) -> list[str]:
        """The held shards; an unreachable or failing endpoint is retried with backoff until
        it answers or the outage budget is spent."""
        started: float | None = None
        attempt = 0
        while True:
            try:
                return self._held()
            except OUTAGE_ERRORS as exc:
                now = self.clock()
                started = now if started is None else started
                if now - started >= self.outage_budget:
                    raise OutageTooLong(
                        f"{self.stream}: endpoint failing for {now - started:.0f}s "
                        f"(budget {self.outage_budget:.0f}s): {exc}"
                    ) from exc
                attempt += 1
                self._count(outage_retries=1)
                delay = min(10.0, 0.5 * 2 ** min(attempt, 5))
                log.warning(
                    "%s: %s: %s; retry %d in %.1fs (outage %.0fs of %.0fs budget)",
                    self.stream, type(exc).__name__, str(exc)[:200], attempt, delay,
                    now - started, self.outage_budget,
                )  # fmt: skip
                self.sleep(delay)
                if self.stopping:
                    return []
