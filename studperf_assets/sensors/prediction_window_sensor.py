"""prediction_window_sensor: closed time windows of the predictions archive become partitions
of the monitoring assets and runs of ``monitoring_job``, the newest first."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from dagster import (
    ResourceParam,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
)

from studperf_assets.constants import (
    PRIORITY_TAG,
    WINDOW_END_TAG,
    WINDOW_ROWS_TAG,
    WINDOW_SMALL_TAG,
)
from studperf_assets.jobs import IN_PROCESS
from studperf_assets.lib.archive import count_rows, object_time, objects_between
from studperf_assets.lib.windows import (
    Window,
    close_windows,
    newest_first_priorities,
    window_key,
    window_start,
)
from studperf_assets.partitions import monitoring_window_partitions
from studperf_assets.resources.io_manager import SafeIOManager
from studperf_assets.resources.metrics_db import MetricsDatabase, MonitoringDatabaseError
from studperf_assets.resources.monitoring import MonitoringSettings
from studperf_assets.resources.object_store import ObjectStore
from studperf_assets.sensors.storage_retention import retire_window_storage
from studperf_assets.sensors.window_retention import (
    RETENTION_EVERY_SECONDS,
    retire_expired_windows,
)

MAX_WINDOWS_PER_TICK = 100
PARTITIONS_NAME = str(monitoring_window_partitions.name)


def window_request(window: Window, priority: int) -> RunRequest:
    """The run of one window: its key (also the run key: a window is never run twice by
    this sensor, even with a lost cursor), its end in the run config, its size in tags."""
    config = {"end": window_key(window.end), "small": window.small}
    return RunRequest(
        run_key=window.key,
        partition_key=window.key,
        run_config={**IN_PROCESS, "ops": {"prediction_windows": {"config": config}}},
        tags={
            PRIORITY_TAG: str(priority),
            WINDOW_END_TAG: window_key(window.end),
            WINDOW_ROWS_TAG: str(window.rows),
            WINDOW_SMALL_TAG: str(window.small).lower(),
        },
    )


def prediction_window_sensor(
    context: SensorEvaluationContext,
    object_store: ObjectStore,
    monitoring_settings: MonitoringSettings,
    io_manager: ResourceParam[SafeIOManager],
    metrics_database: MetricsDatabase,
) -> SensorResult | SkipReason:
    """Closes the windows of the predictions archive that can close (their length passed,
    ``min_window_rows`` reached or the maximum wait over, and settled) and requests a
    monitoring run for each, the newest window with the highest priority.

    The cursor holds the open window's start and the row counts of the objects already
    counted in it: an object is read once to count its rows, however many ticks it waits.
    Without a cursor the sensor looks back ``window_retention_days``. Every
    ``RETENTION_EVERY_SECONDS`` it also deletes the windows past ``window_retention_days``
    whose day is rolled up (``daily_metrics``), and their files (``window_retention``), their
    Evidently snapshots and a folder store's archive past ``archive_retention_days``
    (``storage_retention``)."""
    rules = monitoring_settings.window_rules()
    state: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
    now = datetime.now(UTC)
    settled = now - timedelta(seconds=rules.settle_seconds)
    open_start = window_start(state["open"]) if state.get("open") else None
    look_from = open_start or rules.floor(
        now - timedelta(days=monitoring_settings.window_retention_days)
    )
    counts: dict[str, int] = dict(state.get("counts", {}))
    archive = object_store.archive()
    for key in objects_between(archive, "predictions", look_from, settled):
        if key not in counts:
            counts[key] = count_rows(archive, key)
    rows_by_time: dict[datetime, int] = {}
    for key, rows in counts.items():
        at = object_time(key)
        if at is not None and at < settled:
            rows_by_time[at] = rows_by_time.get(at, 0) + rows
    windows, left_open = close_windows(open_start, now, rows_by_time, rules, MAX_WINDOWS_PER_TICK)
    retired_at = float(state.get("retired_at", 0.0))
    if now.timestamp() - retired_at >= RETENTION_EVERY_SECONDS:
        try:
            retired = retire_expired_windows(
                context.instance,
                monitoring_settings.window_retention_days,
                object_store,
                io_manager,
                metrics_database,
            )
        except MonitoringDatabaseError as error:  # windows are kept: retried next time
            context.log.warning(f"{error}; no window retired this time")
            retired = []
        if retired:
            context.log.info(f"{len(retired)} windows past retention deleted ({retired[0]} ..)")
        stored = retire_window_storage(retired, monitoring_settings, object_store, now)
        if stored.snapshots or stored.archive_objects:
            context.log.info(f"past retention, deleted: {stored}")
        retired_at = now.timestamp()
    kept = {
        k: n
        for k, n in counts.items()
        if left_open is not None and (at := object_time(k)) is not None and at >= left_open
    }
    cursor = json.dumps(
        {
            "open": window_key(left_open) if left_open else None,
            "counts": dict(sorted(kept.items())),
            "retired_at": retired_at,
        }
    )
    if not windows:
        waiting = sum(kept.values())
        what = f"window {window_key(left_open)}" if left_open else "no window"
        if cursor != context.cursor:
            context.update_cursor(cursor)
        return SkipReason(f"{what} open: {waiting} rows in {len(kept)} settled objects so far")
    priorities = newest_first_priorities(len(windows))
    requests = [window_request(w, p) for w, p in zip(windows, priorities, strict=True)]
    small = [w.key for w in windows if w.small]
    context.log.info(
        f"{len(windows)} windows closed ({windows[0].key} .. {windows[-1].key}; "
        f"{sum(w.rows for w in windows)} rows"
        + (f"; small: {', '.join(small)}" if small else "")
        + ")"
    )
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[
            monitoring_window_partitions.build_add_request([w.key for w in windows])
        ],
        cursor=cursor,
    )
