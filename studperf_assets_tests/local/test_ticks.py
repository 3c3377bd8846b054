"""A sensor's tick in this process (``local.ticks``), as the demo evaluates it."""

from __future__ import annotations

import pytest
from dagster import (
    Definitions,
    SensorEvaluationContext,
    SkipReason,
    instance_for_test,
    job,
    op,
    sensor,
)

from studperf_assets.lib.loop_events import RETRAINING, emit
from studperf_assets.local.events import ReadableEvents
from studperf_assets.local.ticks import tick


@op
def nothing() -> None:
    pass


@job
def nothing_job() -> None:
    nothing()


@sensor(job=nothing_job)
def telling_sensor(context: SensorEvaluationContext) -> SkipReason:
    emit(context.log.info, RETRAINING, check="data_drift", window="batch-000004", new_labels=800)
    return SkipReason("nothing to run")


def test_a_ticks_event_records_can_read_as_studperf_up_prints_them(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Without a filter the sensor's record reaches Dagster's console as JSON; with
    ``ReadableEvents`` (the demo's) it is the line ``studperf up`` prints."""
    definitions = Definitions(jobs=[nothing_job], sensors=[telling_sensor])
    with instance_for_test() as instance:
        capfd.readouterr()
        raw = tick(definitions, instance, {}, "telling_sensor")
        out, err = capfd.readouterr()
        assert '{"studperf_event": "retraining"' in out + err
        readable = tick(definitions, instance, {}, "telling_sensor", log_filter=ReadableEvents())
        out, err = capfd.readouterr()
    lines = [line for line in (out + err).splitlines() if " - dagster - " in line]
    assert [line.split(" - INFO - ")[-1] for line in lines] == [
        "retraining: data_drift failed on batch-000004; 800 new labelled rows"
    ]
    assert raw.skip_message == readable.skip_message == "nothing to run"
