"""Retention of what monitoring keeps beside the window partitions: the Evidently snapshots of
windows past ``window_retention_days`` and, in a folder monitoring store, the predictions
archive past ``archive_retention_days``.

``retire_window_storage`` runs in prediction_window_sensor's retention pass, right after
``window_retention.retire_expired_windows`` (the partitions, reports and asset values),
with the windows that pass retired. In AWS the archive is expired by the bucket's lifecycle
rule (``terraform/modules/s3``, variable ``archive_retention_days``, the same default), so
an S3 store's archive is left alone here. The table of everything kept, and for how long:
docs/operations.md#retention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from studperf_assets.lib.archive import ARCHIVE_PREFIX, KINDS
from studperf_assets.lib.retention import expire_archive_folder
from studperf_assets.resources.evidently_workspace import (
    delete_snapshots_before,
    delete_window_snapshots,
)
from studperf_assets.resources.monitoring import MonitoringSettings
from studperf_assets.resources.object_store import LocalObjectStore, ObjectStore


@dataclass(frozen=True)
class StorageRetired:
    snapshots: int  # snapshot files deleted
    archive_objects: int  # archive objects deleted (a folder store only)

    def __str__(self) -> str:
        return f"{self.snapshots} snapshots, {self.archive_objects} archive objects"


def archive_cutoff(settings: MonitoringSettings, now: datetime) -> datetime:
    """Archive objects with a key time before this may go: ``archive_retention_days`` ago,
    and never later than ``window_retention_days`` ago (a window still within its
    retention, or its catch-up run, reads its objects)."""
    days = max(settings.archive_retention_days, settings.window_retention_days)
    return now - timedelta(days=days)


def retire_window_storage(
    retired_windows: Sequence[str],
    settings: MonitoringSettings,
    object_store: ObjectStore,
    now: datetime | None = None,
    unmonitored_from: datetime | None = None,
) -> StorageRetired:
    """Delete the snapshots of ``retired_windows`` (the windows the retention pass just
    deleted), any snapshot older than ``window_retention_days``, and, in a folder store,
    the archive's hours older than ``archive_cutoff`` and than ``unmonitored_from`` (the
    start of the window the sensor has not closed yet: a backlog is never deleted unread)."""
    now = now or datetime.now(UTC)
    workspace = settings.evidently_workspace
    snapshots = delete_window_snapshots(workspace, retired_windows)
    snapshots += delete_snapshots_before(
        workspace, now - timedelta(days=settings.window_retention_days)
    )
    archived = 0
    if isinstance(object_store, LocalObjectStore):  # S3: the bucket's lifecycle rule
        root = Path(object_store.uri(ARCHIVE_PREFIX))
        cutoff = archive_cutoff(settings, now)
        if unmonitored_from is not None:
            cutoff = min(cutoff, unmonitored_from)
        archived = sum(expire_archive_folder(root / kind, cutoff) for kind in KINDS)
    return StorageRetired(snapshots, archived)
