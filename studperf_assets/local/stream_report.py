"""What ``studperf stream`` says while it runs: a line per batch and, every minute, a summary
(the ``consumer minute`` event record, ``lib.loop_events``).

Both are read from the handler's own log line per batch (``observability.publish_batch``,
``BATCH_SCORED``), by its fields: the consumer calls ``lambda_handler``, which returns only
Lambda's partial batch response. What the handler never logs, the poller counts
(``PollStats``): the minute also says the function errors (invocations that raised) and the
records written to the on-failure file in it, so no record leaves without a count."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from lambda_service.service import BatchOutcome
from studperf_assets.lib.loop_events import CONSUMER_MINUTE, emit
from studperf_assets.local.poller import PollStats


@dataclass
class _Window:
    batches: int = 0
    records: int = 0
    predictions: int = 0
    errors: int = 0
    failures: int = 0
    versions: set[str] = field(default_factory=set)


class StreamReport:
    def __init__(
        self,
        log: logging.Logger,
        every_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log, self.every, self.clock = log, every_seconds, clock
        self.window = _Window()
        self.since = clock()
        self.counted = PollStats()  # the poller's totals at the last summary
        self.lock = threading.Lock()  # batches come from every shard's reader thread

    def batch(self, outcome: BatchOutcome) -> None:
        self.log.info(
            "batch: %d records, %d predicted, %d errors, %d to retry; model %s; %.1f ms",
            outcome.records, outcome.predictions, outcome.errors, outcome.failed,
            outcome.model_version, outcome.milliseconds,
            extra={
                "records": outcome.records, "predictions": outcome.predictions,
                "errors": outcome.errors, "to_retry": outcome.failed,
                "model_version": outcome.model_version, "ms": round(outcome.milliseconds, 1),
            },
        )  # fmt: skip
        with self.lock:
            window = self.window
            window.batches += 1
            window.records += outcome.records
            window.predictions += outcome.predictions
            window.errors += outcome.errors
            window.failures += outcome.failed
            window.versions.add(outcome.model_version)

    def poll(self, stats: PollStats) -> None:
        """Called after every poll: a summary once a minute has passed, idle or not."""
        elapsed = self.clock() - self.since
        if elapsed < self.every:
            return
        with self.lock:
            w, before = self.window, self.counted
            self.window, self.since = _Window(), self.clock()
            self.counted = replace(stats, per_shard={})
        emit(
            self.log.info, CONSUMER_MINUTE,
            seconds=round(elapsed), batches=w.batches, records=w.records,
            predicted=w.predictions, errors=w.errors, to_retry=w.failures,
            function_errors=stats.function_errors - before.function_errors,
            on_failure_records=stats.discarded_records - before.discarded_records,
            models=sorted(w.versions), total_records=stats.records,
            retried_batches=stats.retried_batches, outage_retries=stats.outage_retries,
        )  # fmt: skip


class BatchLines(logging.Handler):
    """On the handler's logger (``studperf``): each of its ``BATCH_SCORED`` records, read by
    its fields, is a batch of the report."""

    def __init__(self, report: StreamReport) -> None:
        # imported here: building the handler's logger is the caller's moment (lambda_runtime)
        from lambda_service.observability import BATCH_SCORED, SERVICE

        super().__init__()
        self.report, self.logger, self.message = report, SERVICE, BATCH_SCORED

    def emit(self, record: logging.LogRecord) -> None:
        if record.name != self.logger or record.msg != self.message:
            return
        fields = record.__dict__
        self.report.batch(
            BatchOutcome(
                records=fields["Records"],
                predictions=fields["Predictions"],
                errors=fields["ErrorRecords"],
                model_version=fields["model_version"],
                milliseconds=fields["ScoringMilliseconds"],
                failed=fields["failed_records"],
            )
        )
