"""Retention of monitoring windows: per-window partitions older than
``window_retention_days`` are deleted, so no asset holds more than about
retention x windows-per-day partitions (the daily rollup keeps their summary).

``retire_expired_windows`` is called from prediction_window_sensor's tick (at most every
``RETENTION_EVERY``): the partitions go, and with them each window's files, its HTML
reports in the monitoring store and its asset values in the IO manager's store."""

from datetime import UTC, datetime

from dagster import DagsterInstance

from studperf_assets.lib.windows import expired_windows
from studperf_assets.partitions import monitoring_window_partitions
from studperf_assets.resources.io_manager import SafeIOManager
from studperf_assets.resources.object_store import ObjectStore

PARTITIONS = str(monitoring_window_partitions.name)
MAX_DELETIONS_PER_TICK = 500  # a first tick over a long history spreads its work
RETENTION_EVERY_SECONDS = 600
WINDOW_ASSETS = ("prediction_windows", "drift_report", "batch_metrics")


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


def retire_expired_windows(
    instance: DagsterInstance,
    retention_days: int,
    object_store: ObjectStore,
    io_manager: SafeIOManager,
    now: datetime | None = None,
) -> list[str]:
    """Delete the expired window partitions and their stored files: the reports under
    ``reports/<window>/`` and the values of the window's assets. Returns the keys."""
    expired = delete_expired_windows(instance, retention_days, now)
    for key in expired:
        object_store.delete_prefix(f"reports/{key}/")
        for asset in WINDOW_ASSETS:
            io_manager.store.delete_prefix(f"{io_manager.prefix}/{asset}/{key}/")
    return expired
