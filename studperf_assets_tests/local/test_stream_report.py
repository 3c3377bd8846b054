"""What `studperf stream` says while it runs (``local.stream_report``): a line per batch,
read from the handler's own batch line, and a summary each minute."""

from __future__ import annotations

import logging

import pytest


def test_the_stream_report_reads_the_handlers_batch_line_by_its_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The emitter (observability.publish_batch) and the reader (stream_report.BatchLines)."""
    from lambda_service.observability import metrics, publish_batch
    from lambda_service.service import BatchOutcome
    from studperf_assets.local.lambda_runtime import lambda_logs_here
    from studperf_assets.local.stream_report import BatchLines, StreamReport

    undo = lambda_logs_here()
    lines = BatchLines(StreamReport(logging.getLogger("studperf.stream")))
    logging.getLogger("studperf").addHandler(lines)
    try:
        with caplog.at_level(logging.INFO, logger="studperf"):
            outcome = BatchOutcome(100, 97, 1, ("7", "9"), "v1", 12.34, failed=2)
            publish_batch(outcome)
    finally:
        metrics.clear_metrics()  # flushed by the handler's decorator, which is not called here
        logging.getLogger("studperf").removeHandler(lines)
        undo()
    said = [r.getMessage() for r in caplog.records if r.name == "studperf.stream"]
    assert said == ["batch: 100 records, 97 predicted, 1 errors, 2 to retry; model v1; 12.3 ms"]


def test_the_stream_report_has_a_line_per_batch_and_a_summary_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from lambda_service.service import BatchOutcome
    from studperf_assets.local.poller import PollStats
    from studperf_assets.local.stream_report import StreamReport

    now = [0.0]
    report = StreamReport(logging.getLogger("studperf.stream"), clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="studperf.stream"):
        report.batch(BatchOutcome(100, 98, 1, ("7",), "v1", 12.34, failed=1))
        report.poll(PollStats(records=100))
        now[0] = 61.0
        report.poll(PollStats(records=100, retried_batches=1))
    from studperf_assets.lib.loop_events import CONSUMER_MINUTE, parse

    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "batch: 100 records, 98 predicted, 1 errors, 1 to retry; model v1; 12.3 ms"
    assert len(lines) == 2 and (minute := parse(lines[1])) is not None
    assert minute.name == CONSUMER_MINUTE
    assert dict(minute.fields) == {
        "seconds": 61, "batches": 1, "records": 100, "predicted": 98, "errors": 1,
        "to_retry": 1, "function_errors": 0, "on_failure_records": 0, "models": ["v1"],
        "total_records": 100, "retried_batches": 1, "outage_retries": 0,
    }  # fmt: skip
