"""The human log format: loop event records readable on a terminal, JSON in a part's log."""

from __future__ import annotations

import logging

from lambda_service.event_record import event_line
from studperf_assets.cli.terminal import HumanFormatter
from studperf_assets.lib.loop_events import parse


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("studperf.model", logging.INFO, __file__, 1, message, None, None)


def test_an_event_reads_as_its_name_and_fields_on_a_terminal() -> None:
    line = event_line("consumer swapped", from_version="v1", to_version="v2")
    shown = HumanFormatter(readable_events=True).format(_record(line))
    assert shown.endswith("INFO    consumer swapped: from_version=v1, to_version=v2")
    assert parse(shown) is None  # a terminal is for people


def test_in_a_log_file_the_record_stays_what_studperf_up_reads() -> None:
    line = event_line("consumer swapped", from_version="v1", to_version="v2")
    written = HumanFormatter(readable_events=False).format(_record(line))
    event = parse(written)
    assert event is not None and event.name == "consumer swapped"
    assert dict(event.fields) == {"from_version": "v1", "to_version": "v2"}


def test_other_messages_are_left_alone() -> None:
    shown = HumanFormatter(readable_events=True).format(_record("scored 200 records"))
    assert shown.endswith("INFO    scored 200 records")


def test_a_structured_line_shows_its_fields_on_a_terminal() -> None:
    """The handler's per-batch line carries its figures in ``extra=``: a terminal shows them
    (they were dropped, leaving a bare "batch scored")."""
    record = _record("batch scored")
    record.records, record.predicted, record.model_version = 200, 199, "v1"
    shown = HumanFormatter(readable_events=True).format(record)
    assert shown.endswith("batch scored: records=200, predicted=199, model_version=v1")
    assert (
        HumanFormatter(readable_events=False)
        .format(_record("batch scored"))
        .endswith("INFO    batch scored")
    )
