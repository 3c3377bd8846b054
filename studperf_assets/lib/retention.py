"""What retention deletes: which bundles of a model store go (decided here, deleted by
``resources.model_store`` after a promotion), and the hours of a folder archive past their days
(``expire_archive_folder`` deletes them itself, a folder being plain files; called by
``sensors.storage_retention`` in the window sensor's retention pass). No Dagster. The
table of everything studperf keeps, and for how long, is docs/operations.md#retention.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path


def bundles_to_delete(
    published: Iterable[str],
    protected: Iterable[str | None],
    keep_newest: int,
    production: str | None,
) -> list[str]:
    """The published versions to delete, oldest first. Never deleted: a ``protected``
    version (every version a pointer names, and the previous champion), a version newer
    than ``production`` (a candidate still in its checks, whose promotion has not come
    yet), and the ``keep_newest`` newest of the rest. Versions sort by the time they
    begin with (``vYYYYmmddTHHMMSSZ-…``). With no production version nothing is deleted:
    a store that has never promoted has no champion to keep."""
    if production is None:
        return []
    keep = {v for v in protected if v}
    others = sorted((v for v in set(published) if v not in keep and v <= production), reverse=True)
    return sorted(others[max(0, keep_newest) :])


def _hour_of(parts: tuple[str, str, str, str]) -> datetime | None:
    try:
        year, month, day, hour = (int(p) for p in parts)
        return datetime(year, month, day, hour, tzinfo=UTC)
    except ValueError:  # not a yyyy/MM/dd/HH folder: not the archive's, left alone
        return None


def expire_archive_folder(kind_root: Path, cutoff: datetime) -> int:
    """Delete the hour folders ``<kind_root>/yyyy/MM/dd/HH/`` whose whole hour is before
    ``cutoff`` (every object in one has a key time in that hour: Firehose's layout,
    ``lib.archive``), then the day, month and year folders left empty. Returns the objects
    deleted. An object is kept up to one hour past its retention; nothing newer goes."""
    deleted = 0
    for year in _numbered(kind_root):
        for month in _numbered(year):
            for day in _numbered(month):
                for hour in _numbered(day):
                    start = _hour_of((year.name, month.name, day.name, hour.name))
                    if start is None or start + timedelta(hours=1) > cutoff:
                        continue
                    deleted += sum(1 for p in hour.rglob("*") if not p.is_dir())
                    shutil.rmtree(hour, ignore_errors=True)
                _remove_if_empty(day)
            _remove_if_empty(month)
        _remove_if_empty(year)
    return deleted


def _numbered(folder: Path) -> list[Path]:
    """The sub-folders named by a number (the archive's yyyy, MM, dd, HH), sorted; any
    other entry, and a symlink, is not the archive's and is left alone."""
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.name.isdigit() and p.is_dir() and not p.is_symlink()
    )


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (or already gone): kept
        folder.rmdir()
