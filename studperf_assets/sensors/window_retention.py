"""Retention of monitoring windows: per-window partitions older than
``window_retention_days`` are deleted once their day is rolled up, so no asset holds more
than about retention x windows-per-day partitions, and ``monitoring_daily`` one a day.

A window is deleted only when its UTC day has a row in ``daily_metrics`` (the daily
rollup, ``assets/rollup.py``, keeps its summary): a day whose rollup has not been recorded
(the schedule stopped, the run failed) keeps its windows until it is. While the monitoring
database cannot be reached, nothing is deleted.

``retire_expired_windows`` is called from prediction_window_sensor's tick (at most every
``RETENTION_EVERY``): the partitions go, and with them each window's files, its HTML
reports in the monitoring store and its asset values in the IO manager's store."""

from datetime import UTC, datetime

from dagster import DagsterInstance

from studperf_assets.lib.daily_rollup import day_of
from studperf_assets.lib.windows import expired_windows
from studperf_assets.partitions import monitoring_window_partitions
from studperf_assets.resources.io_manager import SafeIOManager
from studperf_assets.resources.metrics_db import MetricsDatabase
from studperf_assets.resources.object_store import ObjectStore

PARTITIONS = str(monitoring_window_partitions.name)
MAX_DELETIONS_PER_TICK = 500  # a first tick over a long history spreads its work
RETENTION_EVERY_SECONDS = 600
WINDOW_ASSETS = ("prediction_windows", "drift_report", "batch_metrics")


def delete_expired_windows(
    instance: DagsterInstance,
    retention_days: int,
    metrics_database: MetricsDatabase,
    now: datetime | None = None,
) -> list[str]:
    """Delete the expired window partitions whose day is rolled up (at most
    ``MAX_DELETIONS_PER_TICK``); returns their keys. Their stored files are the caller's to
    delete (same keys). A ``MonitoringDatabaseError`` deletes nothing."""
    keys = instance.get_dynamic_partitions(PARTITIONS)
    expired = expired_windows(keys, now or datetime.now(UTC), retention_days)
    if not expired:
        return []
    rolled_up = metrics_database.rolled_up_days({d for k in expired if (d := day_of(k))})
    retired = [k for k in expired if day_of(k) in rolled_up][:MAX_DELETIONS_PER_TICK]
    for key in retired:
        instance.delete_dynamic_partition(PARTITIONS, key)
    return retired


def retire_expired_windows(
    instance: DagsterInstance,
    retention_days: int,
    object_store: ObjectStore,
    io_manager: SafeIOManager,
    metrics_database: MetricsDatabase,
    now: datetime | None = None,
) -> list[str]:
    """Delete the expired window partitions whose day is rolled up, and their stored files:
    the reports under ``reports/<window>/``, the values of the window's assets, and its rows
    of the prediction index (``MetricsDatabase.forget_windows``). Returns the keys."""
    expired = delete_expired_windows(instance, retention_days, metrics_database, now)
    if expired:
        metrics_database.forget_windows(expired)
    for key in expired:
        object_store.delete_prefix(f"reports/{key}/")
        for asset in WINDOW_ASSETS:
            io_manager.store.delete_prefix(f"{io_manager.prefix}/{asset}/{key}/")
    return expired
