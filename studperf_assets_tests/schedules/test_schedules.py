"""The daily rollup's schedule: a tick a little after midnight UTC asks for the day that
just ended, running by default like the sensors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import DefaultScheduleStatus, ScheduleDefinition, build_schedule_context

from studperf_assets.constants import MONITORING_DAILY_JOB, MONITORING_DAILY_SCHEDULE
from studperf_assets.definitions import make_definitions
from studperf_assets.deployment import Deployment


def _schedule(home: Path, running: bool = True) -> ScheduleDefinition:
    defs = make_definitions(Deployment(home=home, sensors_running=running))
    return defs.resolve_schedule_def(MONITORING_DAILY_SCHEDULE)


@pytest.mark.parametrize(
    ("tick", "day"),
    [
        (datetime(2026, 12, 2, 0, 45, tzinfo=UTC), "2026-12-01"),
        (datetime(2027, 1, 1, 0, 45, tzinfo=UTC), "2026-12-31"),
        (datetime(2028, 3, 1, 0, 45, tzinfo=UTC), "2028-02-29"),
    ],
)
def test_a_tick_rolls_up_the_day_that_just_ended(tmp_path: Path, tick: datetime, day: str) -> None:
    schedule = _schedule(tmp_path)
    context = build_schedule_context(scheduled_execution_time=tick)
    (request,) = schedule.evaluate_tick(context).run_requests or []
    assert request.partition_key == day
    assert schedule.job_name == MONITORING_DAILY_JOB


def test_it_runs_after_midnight_utc_in_the_deployments_default_status(tmp_path: Path) -> None:
    schedule = _schedule(tmp_path)
    assert schedule.cron_schedule == "45 0 * * *"
    assert schedule.execution_timezone in (None, "UTC")
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    stopped = _schedule(tmp_path, running=False)
    assert stopped.default_status == DefaultScheduleStatus.STOPPED
