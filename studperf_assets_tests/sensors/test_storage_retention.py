"""Archive retention in a folder store never deletes objects the window sensor has not
monitored yet (``storage_retention.retire_window_storage``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from studperf_assets.resources.monitoring import MonitoringSettings
from studperf_assets.resources.object_store import LocalObjectStore
from studperf_assets.sensors.storage_retention import retire_window_storage
from studperf_assets_tests.archive_objects import write_predictions


def test_a_backlog_older_than_archive_retention_is_not_deleted_unread(tmp_path: Path) -> None:
    """Review: a sensor stopped for longer than archive_retention_days would have lost the
    rest of its backlog, unread, to the archive's retention. Hours from the open window on
    stay; older hours still go."""
    store = LocalObjectStore(root=str(tmp_path / "store"))
    settings = MonitoringSettings(evidently_workspace=str(tmp_path / "evidently"))
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    monitored = write_predictions(store, now - timedelta(days=40), 5)
    backlog = write_predictions(store, now - timedelta(days=35), 5)
    open_window = now - timedelta(days=36)  # the sensor's open window: not monitored since
    retired = retire_window_storage([], settings, store, now, unmonitored_from=open_window)
    assert retired.archive_objects == 1
    assert store.list_keys("archive/") == [backlog]
    assert monitored not in store.list_keys("archive/")
