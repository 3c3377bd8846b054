"""prediction_window_sensor's decisions, fast: one tick with ``build_sensor_context`` over
archive objects in a folder, named relative to the present."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    DagsterInstance,
    SensorResult,
    SkipReason,
    build_sensor_context,
    instance_for_test,
)

from studperf_assets.constants import PRIORITY_TAG, WINDOW_ROWS_TAG, WINDOW_SMALL_TAG
from studperf_assets.lib.daily_rollup import summarise_day
from studperf_assets.lib.windows import WindowRules, window_key
from studperf_assets.resources.io_manager import SafeIOManager
from studperf_assets.resources.metrics_db import MetricsDatabase
from studperf_assets.resources.monitoring import MonitoringSettings
from studperf_assets.resources.object_store import LocalObjectStore
from studperf_assets.sensors.prediction_window_sensor import prediction_window_sensor
from studperf_assets_tests.archive_objects import write_predictions


def settings(evidently_workspace: str = ".studperf/evidently") -> MonitoringSettings:
    return MonitoringSettings(
        window_seconds=60,
        min_window_rows=20,
        max_window_wait_seconds=180,
        window_settle_seconds=5,
        evidently_workspace=evidently_workspace,
    )


SETTINGS = settings()
RULES: WindowRules = SETTINGS.window_rules()


def settings_for(store: LocalObjectStore) -> MonitoringSettings:
    """SETTINGS with the Evidently workspace beside the store (retention deletes in it)."""
    return settings(store.root + "-evidently")


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(root=str(tmp_path))


@pytest.fixture
def database(tmp_path: Path) -> MetricsDatabase:
    """The monitoring database retention asks which days are rolled up (SQLite)."""
    return MetricsDatabase(url=f"sqlite:///{tmp_path / 'monitoring.db'}")


def rolled_up(database: MetricsDatabase, *days: date) -> None:
    for day in days:
        database.record_day(summarise_day(day, []).to_row())


def grid_ago(lengths: int) -> datetime:
    """The grid point ``lengths`` window lengths before the current one."""
    return RULES.floor(datetime.now(UTC)) - lengths * RULES.length


def tick(
    instance: DagsterInstance,
    store: LocalObjectStore,
    cursor: str | None = None,
    database: MetricsDatabase | None = None,
) -> tuple[Any, str | None]:
    """One tick; ``database``: where days are rolled up (by default a database under the
    store's folder, with no day rolled up, so no window is retired)."""
    database = database or MetricsDatabase(url=f"sqlite:///{store.root}-monitoring.db")
    with build_sensor_context(instance=instance, cursor=cursor) as context:
        io_manager = SafeIOManager(store=LocalObjectStore(root=store.root + "-io"))
        result = prediction_window_sensor(context, store, settings_for(store), io_manager, database)
        after = context.cursor
    if isinstance(result, SensorResult) and result.cursor is not None:
        after = result.cursor
    return result, after


def test_a_closed_window_becomes_a_partition_and_a_run(
    instance: DagsterInstance, store: LocalObjectStore
) -> None:
    start = grid_ago(3)
    write_predictions(store, start + timedelta(seconds=5), 15)
    write_predictions(store, start + timedelta(seconds=30), 10)
    write_predictions(store, start + timedelta(seconds=70), 30)  # the next window
    result, cursor = tick(instance, store)
    assert isinstance(result, SensorResult)
    requests = list(result.run_requests or [])
    keys = [r.partition_key for r in requests]
    assert keys == [window_key(start), window_key(start + RULES.length)]
    (added,) = result.dynamic_partitions_requests or []
    assert list(getattr(added, "partition_keys", [])) == keys
    first = requests[0]
    assert first.run_key == first.partition_key  # never run twice by the sensor
    assert first.tags[WINDOW_ROWS_TAG] == "25" and first.tags[WINDOW_SMALL_TAG] == "false"
    config = first.run_config["ops"]["prediction_windows"]["config"]
    assert config == {"end": window_key(start + RULES.length), "small": False}
    assert json.loads(str(cursor))["open"] == window_key(start + 2 * RULES.length)
    again, _ = tick(instance, store, cursor)
    assert isinstance(again, SkipReason)  # nothing new: nothing requested twice


def test_a_backlog_runs_the_newest_window_first(
    instance: DagsterInstance, store: LocalObjectStore
) -> None:
    for lengths in range(11, 1, -1):  # the current grid point may not have settled yet
        write_predictions(store, grid_ago(lengths) + timedelta(seconds=1), 25)
    result, _ = tick(instance, store)
    requests = result.run_requests
    assert len(requests) == 10
    priorities = [int(r.tags[PRIORITY_TAG]) for r in requests]
    assert priorities == sorted(priorities) and priorities[-1] == 0
    newest = max(requests, key=lambda r: int(r.tags[PRIORITY_TAG]))
    assert newest.partition_key == max(r.partition_key for r in requests)


def test_a_window_short_of_rows_waits_then_closes_small(
    instance: DagsterInstance, store: LocalObjectStore
) -> None:
    start = grid_ago(1)
    write_predictions(store, start + timedelta(seconds=1), 5)
    waiting, cursor = tick(instance, store)
    assert isinstance(waiting, SkipReason) and "5 rows" in str(waiting.skip_message)
    state = json.loads(str(cursor))
    assert (state["open"], list(state["counts"].values())) == (window_key(start), [5])
    # the object is counted once and remembered
    old = grid_ago(6)
    store2 = LocalObjectStore(root=store.root + "-old")
    write_predictions(store2, old + timedelta(seconds=1), 5)
    small, _ = tick(instance, store2)
    (request,) = small.run_requests
    assert request.partition_key == window_key(old)
    assert request.tags[WINDOW_SMALL_TAG] == "true"
    assert request.run_config["ops"]["prediction_windows"]["config"]["end"] == window_key(
        old + 3 * RULES.length
    )


def test_objects_not_yet_settled_are_not_counted(
    instance: DagsterInstance, store: LocalObjectStore
) -> None:
    now = datetime.now(UTC)
    write_predictions(store, now - timedelta(seconds=2), 50)  # within settle_seconds
    result, cursor = tick(instance, store)
    assert isinstance(result, SkipReason)
    assert json.loads(str(cursor))["counts"] == {}


def test_an_empty_archive_makes_no_partition(
    instance: DagsterInstance, store: LocalObjectStore
) -> None:
    result, cursor = tick(instance, store)
    assert isinstance(result, SkipReason) and "no window open" in str(result.skip_message)
    state = json.loads(str(cursor))
    assert (state["open"], state["counts"]) == (None, {})


def test_windows_past_retention_are_deleted_and_nothing_else(
    instance: DagsterInstance, database: MetricsDatabase
) -> None:
    from studperf_assets.sensors.window_retention import PARTITIONS, delete_expired_windows

    now = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
    old = [window_key(now - timedelta(days=7, minutes=m)) for m in (1, 5)]
    kept = [window_key(now - timedelta(days=6, hours=23)), window_key(now)]
    instance.add_dynamic_partitions(PARTITIONS, [*old, *kept, "not-a-window"])
    rolled_up(database, date(2026, 12, 1), date(2026, 12, 7), date(2026, 12, 8))
    assert delete_expired_windows(instance, 7, database, now=now) == sorted(old)
    assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == sorted([*kept, "not-a-window"])
    assert delete_expired_windows(instance, 7, database, now=now) == []


def test_retention_keeps_the_windows_of_a_day_not_rolled_up_yet(
    instance: DagsterInstance, database: MetricsDatabase
) -> None:
    """A window past retention is deleted only once its day has a ``daily_metrics`` row:
    a day whose rollup was never recorded keeps every window, however old."""
    from studperf_assets.sensors.window_retention import PARTITIONS, delete_expired_windows

    now = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)
    first_day = ["2026-12-01T10:00:00Z", "2026-12-01T23:55:00Z"]
    second_day = ["2026-12-02T00:00:00Z", "2026-12-02T08:30:00Z"]
    instance.add_dynamic_partitions(PARTITIONS, [*first_day, *second_day])
    assert delete_expired_windows(instance, 7, database, now=now) == []  # nothing rolled up
    rolled_up(database, date(2026, 12, 2))
    assert delete_expired_windows(instance, 7, database, now=now) == second_day
    assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == first_day
    rolled_up(database, date(2026, 12, 1))
    assert delete_expired_windows(instance, 7, database, now=now) == first_day
    assert instance.get_dynamic_partitions(PARTITIONS) == []


def test_an_unreachable_database_retires_nothing_and_the_tick_goes_on(
    instance: DagsterInstance, store: LocalObjectStore, tmp_path: Path
) -> None:
    from studperf_assets.sensors.window_retention import PARTITIONS

    old = window_key(RULES.floor(datetime.now(UTC)) - timedelta(days=8))
    instance.add_dynamic_partitions(PARTITIONS, [old])
    (tmp_path / "not-a-folder").write_text("")
    unreachable = MetricsDatabase(url=f"sqlite:///{tmp_path / 'not-a-folder' / 'm.db'}")
    result, _ = tick(instance, store, database=unreachable)
    assert isinstance(result, SkipReason)
    assert instance.get_dynamic_partitions(PARTITIONS) == [old]


def test_a_tick_retires_expired_windows_and_their_files(
    instance: DagsterInstance, store: LocalObjectStore, database: MetricsDatabase
) -> None:
    from studperf_assets.sensors.window_retention import PARTITIONS

    old_start = RULES.floor(datetime.now(UTC)) - timedelta(days=8)
    old = window_key(old_start)
    recent = window_key(grid_ago(2))
    rolled_up(database, old_start.date())
    instance.add_dynamic_partitions(PARTITIONS, [old, recent])
    io_store = LocalObjectStore(root=store.root + "-io")
    for key in (old, recent):
        store.put_bytes(f"reports/{key}/drift.html", b"<html>")
        io_store.put_bytes(f"assets/drift_report/{key}/_value.json", b"{}")
    _, cursor = tick(instance, store, database=database)
    assert instance.get_dynamic_partitions(PARTITIONS) == [recent]
    assert store.list_keys("reports/") == [f"reports/{recent}/drift.html"]
    assert io_store.list_keys("assets/") == [f"assets/drift_report/{recent}/_value.json"]
    instance.add_dynamic_partitions(PARTITIONS, [old])
    tick(instance, store, cursor, database)  # not again before RETENTION_EVERY_SECONDS
    assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == sorted([old, recent])


def test_a_retired_window_leaves_no_prediction_index_behind(
    instance: DagsterInstance, store: LocalObjectStore, database: MetricsDatabase
) -> None:
    """Measured (benchmarks/sustained_load.py): the prediction index, one row per
    prediction, was the monitoring database's only table growing with traffic and nothing
    pruned it. A retired window's index rows and label join go with it; another's stay."""
    from studperf_assets.sensors.window_retention import PARTITIONS

    old_start = RULES.floor(datetime.now(UTC)) - timedelta(days=8)
    old, recent = window_key(old_start), window_key(grid_ago(2))
    rolled_up(database, old_start.date())
    instance.add_dynamic_partitions(PARTITIONS, [old, recent])
    for key in (old, recent):
        database.index_predictions(key, [f"{key}-r{i}" for i in range(3)])
        database.record_label_join(key, datetime.now(UTC), rows=3, labelled=0)
    tick(instance, store, database=database)
    assert database.partitions_for([f"{old}-r0", f"{recent}-r0"]) == {recent}
    assert set(database.label_joins([old, recent])) == {recent}


def test_a_tick_retires_the_snapshots_of_expired_windows_and_the_old_archive(
    instance: DagsterInstance, store: LocalObjectStore, database: MetricsDatabase
) -> None:
    from studperf_assets.resources.evidently_workspace import (
        project_id,
        snapshot_id,
        snapshot_name,
    )
    from studperf_assets.sensors.window_retention import PARTITIONS

    now = datetime.now(UTC)
    old_start = RULES.floor(now) - timedelta(days=8)
    old, recent = window_key(old_start), window_key(grid_ago(2))
    rolled_up(database, old_start.date())  # retention waits for the day's rollup
    instance.add_dynamic_partitions(PARTITIONS, [old, recent])
    workspace = Path(settings_for(store).evidently_workspace)
    snapshots = workspace / str(project_id(str(workspace))) / "snapshots"
    snapshots.mkdir(parents=True, exist_ok=True)
    for key in (old, recent):
        (snapshots / f"{snapshot_id(snapshot_name(key, 'drift'))}.json").write_text("{}")
    expired = write_predictions(store, now - timedelta(days=31), 5)
    within = write_predictions(store, now - timedelta(days=29), 5)
    tick(instance, store, database=database)
    assert [p.name for p in snapshots.glob("*.json")] == [
        f"{snapshot_id(snapshot_name(recent, 'drift'))}.json"
    ]
    archived = store.list_keys("archive/")
    assert expired not in archived and within in archived


def test_an_object_written_after_its_window_closed_reruns_the_window_once(
    instance: DagsterInstance, store: LocalObjectStore
) -> None:
    """Field fault (review): an archive object written after its window had closed (a
    stalled stand-in, a delivery Firehose retried) was never monitored, and nothing said so.
    A closed window that gains objects is re-run, once per growth."""
    from studperf_assets.constants import WINDOW_END_TAG
    from studperf_assets.sensors.prediction_window_sensor import LATE_OBJECTS_TAG

    start = grid_ago(4)
    write_predictions(store, start + timedelta(seconds=5), 25)
    first, cursor = tick(instance, store)
    assert [r.partition_key for r in first.run_requests] == [window_key(start)]
    write_predictions(store, start + timedelta(seconds=40), 30, first=100)  # late
    late, cursor = tick(instance, store, cursor)
    assert isinstance(late, SensorResult)
    (request,) = late.run_requests or []
    end = window_key(start + RULES.length)
    assert (request.partition_key, request.run_key) == (
        window_key(start),
        f"{request.partition_key}@objects-2",
    )
    assert request.tags[WINDOW_END_TAG] == end and request.tags[LATE_OBJECTS_TAG] == "2"
    assert request.run_config["ops"]["prediction_windows"]["config"] == {"end": end}
    again, _ = tick(instance, store, cursor)
    assert isinstance(again, SkipReason)  # that growth is re-run once


def test_an_object_that_cannot_be_read_fails_its_window_not_the_sensor(
    instance: DagsterInstance, store: LocalObjectStore, capfd: pytest.CaptureFixture[str]
) -> None:
    """Field fault (review): one corrupt object (or a FIFO, a link out, a name without
    Firehose's time) made every tick raise, so no later window was monitored until it was
    removed. Now it counts no rows and is named; the windows close on time, and only the
    run of the window holding it fails (``prediction_windows``, naming it)."""
    import os

    start = grid_ago(4)
    good = write_predictions(store, start + timedelta(seconds=5), 25)
    folder = Path(store.root) / good.rsplit("/", 1)[0]
    corrupt = good.replace("-00-", "-09-", 1).rsplit("/", 1)[-1].replace(".gz", "-bad.gz")
    (folder / corrupt).write_bytes(b"not gzip")
    os.mkfifo(folder / corrupt.replace("-bad.gz", "-fifo.gz"))
    (folder / "notes.txt.gz").write_bytes(b"no time in this name")
    write_predictions(store, start + RULES.length + timedelta(seconds=5), 25, first=200)
    result, _ = tick(instance, store)
    assert isinstance(result, SensorResult)
    keys = sorted(str(r.partition_key) for r in result.run_requests or [])
    assert keys == [window_key(start), window_key(start + RULES.length)]
    said = "".join(capfd.readouterr())
    assert "not readable GZIP" in said and "not a regular file" in said
    assert "notes.txt.gz" in said
