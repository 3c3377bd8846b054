"""What retention deletes: old bundles, and the hours of a folder archive past their days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from studperf_assets.lib.retention import bundles_to_delete, expire_archive_folder
from studperf_assets.resources.object_store import LocalObjectStore
from studperf_assets_tests.archive_objects import write_object
from studperf_assets_tests.bundle_edits import version

V = [version(n) for n in range(10)]


def test_bundles_past_the_newest_few_go_and_never_a_protected_one() -> None:
    published = V[1:9]
    # production 6 (replaced 3), a challenger at 2; 7 and 8 are newer than the champion
    doomed = bundles_to_delete(published, [V[6], V[3], V[2], None], 2, production=V[6])
    assert doomed == [V[1]]  # 5 and 4 are the two newest others
    assert bundles_to_delete(published, [V[6], V[3]], 0, production=V[6]) == [
        V[1], V[2], V[4], V[5],
    ]  # fmt: skip
    assert bundles_to_delete(published, [V[6]], 100, production=V[6]) == []


def test_no_champion_no_deletion() -> None:
    assert bundles_to_delete(V[1:5], [], 0, production=None) == []


def test_archive_hours_wholly_before_the_cutoff_are_deleted(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path))
    cutoff = datetime(2026, 12, 31, 10, 30, tzinfo=UTC)
    old = [
        write_object(store, "predictions", cutoff - timedelta(days=40), [{"n": 1}]),
        write_object(store, "predictions", cutoff - timedelta(hours=1, minutes=1), [{"n": 2}]),
    ]
    kept = [
        # in the cutoff's own hour, but before it: kept until its whole hour has passed
        write_object(store, "predictions", cutoff - timedelta(minutes=20), [{"n": 3}]),
        write_object(store, "predictions", cutoff + timedelta(hours=2), [{"n": 4}]),
    ]
    (tmp_path / "archive" / "predictions" / "notes").mkdir()  # not the archive's layout
    root = tmp_path / "archive" / "predictions"
    assert expire_archive_folder(root, cutoff) == len(old)
    assert store.list_keys("archive/") == sorted(kept)
    # the emptied year, month and day folders went with the hours
    assert not (root / f"{cutoff - timedelta(days=40):%Y/%m}").exists()
    assert (root / "notes").is_dir()
    assert expire_archive_folder(root, cutoff) == 0
    assert expire_archive_folder(tmp_path / "nothing-here", cutoff) == 0
