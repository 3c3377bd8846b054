"""Retention of monitoring windows: per-window partitions older than
``window_retention_days`` are deleted, so no asset holds more than about
retention x windows-per-day partitions (the daily rollup keeps their summary).

Called from a sensor tick (not registered yet: the window partitions are not in use on this
branch's monitoring assets)."""

from datetime import UTC, datetime

from dagster import DagsterInstance

from studperf_assets.lib.windows import expired_windows
from studperf_assets.partitions import monitoring_window_partitions

PARTITIONS = str(monitoring_window_partitions.name)
MAX_DELETIONS_PER_TICK = 500  # a first tick over a long history spreads its work


def delete_expired_windows(
    instance: DagsterInstance, retention_days: int, now: datetime | None = None
) -> list[str]:
    """Delete the expired window partitions (at most ``MAX_DELETIONS_PER_TICK``); returns
    their keys. Their stored files are the caller's to delete (same keys)."""
    keys = instance.get_dynamic_partitions(PARTITIONS)
    expired = expired_windows(keys, now or datetime.now(UTC), retention_days)
    for key in expired[:MAX_DELETIONS_PER_TICK]:
        instance.delete_dynamic_partition(PARTITIONS, key)
    return expired[:MAX_DELETIONS_PER_TICK]
