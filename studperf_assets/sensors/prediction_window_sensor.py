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
from studperf_assets.lib.archive import (
    UnreadableArchiveObject,
    count_rows,
    object_time,
    objects_between,
)
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
# Closed windows are watched this long for archive objects written after they closed: Firehose
# retries a failed delivery for up to 2 hours by default (S3 destination).
LATE_LOOKBACK = timedelta(hours=2)
LATE_OBJECTS_TAG = "studperf/late_objects"
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


def _rows(context: SensorEvaluationContext, archive: Any, key: str) -> int:
    """An object's rows; one that cannot be read counts none and is named: its window still
    closes on time, and that window's run fails naming it (the sensor goes on)."""
    try:
        return count_rows(archive, key)
    except UnreadableArchiveObject as error:
        context.log.warning(f"{error}: its window's run will fail, naming it")
        return 0


def _objects_in(keys: list[str], start: datetime, end: datetime) -> int:
    return sum(1 for k in keys if (at := object_time(k)) is not None and start <= at < end)


def late_windows(closed: dict[str, list[Any]], listed: list[str]) -> dict[str, int]:
    """Closed windows (key -> [end, objects when last run]) that now hold more objects: an
    archive object written after its window closed (a stalled writer, a delivery retried).
    Updates ``closed``; returns window key -> objects now."""
    late: dict[str, int] = {}
    for key, (end, known) in closed.items():
        now_held = _objects_in(listed, window_start(key), window_start(end))
        if now_held > known:
            late[key] = now_held
            closed[key] = [end, now_held]
    return late


def late_request(context: SensorEvaluationContext, key: str, end: str, objects: int) -> RunRequest:
    """A re-run of a closed window that gained objects: run key ``<window>@objects-<n>``, so
    each growth runs it once; the re-run reads every object of the window again."""
    context.log.warning(
        f"window {key}: {objects} archive objects now, more than when it was monitored: re-run"
    )
    return RunRequest(
        run_key=f"{key}@objects-{objects}",
        partition_key=key,
        run_config={**IN_PROCESS, "ops": {"prediction_windows": {"config": {"end": end}}}},
        tags={PRIORITY_TAG: "0", WINDOW_END_TAG: end, LATE_OBJECTS_TAG: str(objects)},
    )


def _retention(
    context: SensorEvaluationContext,
    retired_at: float,
    now: datetime,
    object_store: ObjectStore,
    monitoring_settings: MonitoringSettings,
    io_manager: SafeIOManager,
    metrics_database: MetricsDatabase,
    unmonitored_from: datetime,
) -> float:
    """Every ``RETENTION_EVERY_SECONDS``: the windows past retention and their storage go;
    returns when retention last ran."""
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
        stored = retire_window_storage(
            retired, monitoring_settings, object_store, now, unmonitored_from
        )
        if stored.snapshots or stored.archive_objects:
            context.log.info(f"past retention, deleted: {stored}")
        retired_at = now.timestamp()
    return retired_at


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
    closed: dict[str, list[Any]] = {
        k: v
        for k, v in state.get("closed", {}).items()
        if window_start(v[0]) >= now - LATE_LOOKBACK
    }
    unplaceable: list[str] = []
    listed = objects_between(
        archive, "predictions", min([look_from, *map(window_start, closed)]), settled, unplaceable
    )
    if unplaceable:  # in no window: named, not counted (a window's run names them too)
        context.log.warning(f"archive objects with no Firehose time in their name: {unplaceable}")
    for key in listed:
        at = object_time(key)
        if key not in counts and at is not None and at >= look_from:
            counts[key] = _rows(context, archive, key)
    late = late_windows(closed, listed)
    rows_by_time: dict[datetime, int] = {}
    for key, rows in counts.items():
        at = object_time(key)
        if at is not None and at < settled:
            rows_by_time[at] = rows_by_time.get(at, 0) + rows
    windows, left_open = close_windows(open_start, now, rows_by_time, rules, MAX_WINDOWS_PER_TICK)
    retired_at = _retention(
        context, float(state.get("retired_at", 0.0)), now, object_store, monitoring_settings,
        io_manager, metrics_database, left_open or look_from,
    )  # fmt: skip
    kept = {
        k: n
        for k, n in counts.items()
        if left_open is not None and (at := object_time(k)) is not None and at >= left_open
    }
    for window in windows:  # its objects now: more later are late, and re-run it
        closed[window.key] = [window_key(window.end), _objects_in(listed, window.start, window.end)]
    cursor = json.dumps(
        {
            "open": window_key(left_open) if left_open else None,
            "counts": dict(sorted(kept.items())),
            "closed": dict(sorted(closed.items())),
            "retired_at": retired_at,
        }
    )
    late_requests = [
        late_request(context, key, closed[key][0], objects) for key, objects in late.items()
    ]
    if not windows and late_requests:
        return SensorResult(run_requests=late_requests, cursor=cursor)
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
        run_requests=[*requests, *late_requests],
        dynamic_partitions_requests=[
            monitoring_window_partitions.build_add_request([w.key for w in windows])
        ],
        cursor=cursor,
    )
