"""The code location's schedules: the daily rollup of monitoring windows
(``monitoring_daily_schedule``), a little after midnight UTC, for the day that just ended.

``build_schedules`` makes them with the deployment's default status, as ``build_sensors``
makes the sensors (running wherever the platform is deployed, unless a setting says
otherwise).
"""

from typing import Any

from dagster import DefaultScheduleStatus, build_schedule_from_partitioned_job

from studperf_assets.constants import MONITORING_DAILY_SCHEDULE
from studperf_assets.jobs import monitoring_daily_job

# 00:45 UTC: the day's last windows have closed by then. A window starting at 23:59 closes
# at the latest after max_window_wait_seconds (30 min by default) and window_settle_seconds
# (90 s), and its monitoring run takes seconds to a minute. A window closed later still (a
# longer wait) is rolled up when the day is materialized again (a backfill).
ROLLUP_HOUR, ROLLUP_MINUTE = 0, 45


def build_schedules(running: bool = True) -> list[Any]:
    """The daily rollup's schedule, running by default (or stopped). Each tick requests the
    newest partition of ``monitoring_daily``: the day that ended before the tick."""
    status = DefaultScheduleStatus.RUNNING if running else DefaultScheduleStatus.STOPPED
    return [
        build_schedule_from_partitioned_job(
            monitoring_daily_job,
            name=MONITORING_DAILY_SCHEDULE,
            hour_of_day=ROLLUP_HOUR,
            minute_of_hour=ROLLUP_MINUTE,
            default_status=status,
            description="Rolls up the monitoring windows of the UTC day that just ended "
            "into daily_metrics (monitoring_daily), at 00:45 UTC.",
        )
    ]
