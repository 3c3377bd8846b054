"""Reading a monitoring window of the archive by KEY time (``lib.archive.read_window``), in a
folder and on moto's S3, through the monitoring store's bridge (``ObjectStore.archive()``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from studperf_assets.lib.archive import (
    FolderArchive,
    S3Archive,
    UnreadableArchiveObject,
    count_rows,
    object_time,
    objects_between,
    read_window,
)
from studperf_assets.resources.object_store import LocalObjectStore, S3ObjectStore
from studperf_assets_tests.archive_objects import prediction, write_object, write_predictions

T0 = datetime(2026, 12, 1, 10, 59, tzinfo=UTC)  # windows across an hour's prefix


def store_of(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    if backend == "s3":
        request.getfixturevalue("moto_server")
        bucket = f"archive-{tmp_path.name[-8:].lower().replace('_', '-')}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        from dagster_aws.s3 import S3Resource

        return S3ObjectStore(bucket=bucket, prefix="monitoring", s3=S3Resource())
    return LocalObjectStore(root=str(tmp_path))


@pytest.mark.parametrize("backend", ["folder", "s3"])
def test_a_window_reads_exactly_the_objects_named_in_it(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = store_of(backend, tmp_path, request)
    archive = store.archive()
    assert isinstance(archive, S3Archive if backend == "s3" else FolderArchive)
    before = write_predictions(store, T0 - timedelta(seconds=1), 5, first=0)
    inside = [
        write_predictions(store, T0, 3, first=10),
        write_predictions(store, T0 + timedelta(seconds=70), 4, first=20),  # the next hour
    ]
    after = write_predictions(store, T0 + timedelta(seconds=120), 6, first=30)
    write_object(store, "errors", T0 + timedelta(seconds=5), [{"error": "x"}] * 2)
    start, end = T0, T0 + timedelta(seconds=120)
    assert objects_between(archive, "predictions", start, end) == inside
    assert before not in objects_between(archive, "predictions", T0, end)
    assert after in objects_between(archive, "predictions", end, end + timedelta(seconds=60))
    assert [count_rows(archive, k) for k in inside] == [3, 4]
    window = read_window(archive, start, end)
    assert window.predictions["request_id"].tolist() == [
        f"r-{n}" for n in (10, 11, 12, 20, 21, 22, 23)
    ]
    assert window.errors == 2 and len(window.objects) == 3
    assert window.duplicates == 0 and window.unreadable == []


def test_a_record_delivered_twice_is_kept_once(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path))
    write_object(store, "predictions", T0, [prediction(1), prediction(2)])
    write_object(store, "predictions", T0 + timedelta(seconds=9), [prediction(2), prediction(3)])
    window = read_window(store.archive(), T0, T0 + timedelta(seconds=60))
    assert window.predictions["request_id"].tolist() == ["r-1", "r-2", "r-3"]
    assert window.duplicates == 1


def test_records_that_are_not_predictions_are_named_not_used(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path))
    key = write_object(store, "predictions", T0, [prediction(1), b"not json", {"grade_class": 1}])
    window = read_window(store.archive(), T0, T0 + timedelta(seconds=60))
    assert window.predictions["request_id"].tolist() == ["r-1"]
    assert [(u["object"], u["line"]) for u in window.unreadable] == [
        (store.uri(key), "2"),
        (store.uri(key), "3"),
    ]
    assert "not JSON" in window.unreadable[0]["reason"]


def test_an_object_that_cannot_be_read_fails_the_window_naming_it(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path))
    key = "archive/predictions/2026/12/01/10/s-1-2026-12-01-10-59-10-abc.gz"
    store.put_bytes(key, b"not gzip")
    with pytest.raises(UnreadableArchiveObject, match=f"{key}.*not readable GZIP"):
        read_window(store.archive(), T0, T0 + timedelta(seconds=60))
    store.put_bytes("archive/predictions/2026/12/01/10/stray.gz", b"")
    with pytest.raises(UnreadableArchiveObject, match=r"stray\.gz: its name has no Firehose time"):
        objects_between(store.archive(), "predictions", T0, T0 + timedelta(seconds=60))


def test_the_key_time_is_firehoses() -> None:
    name = "archive/predictions/2026/12/01/10/studperf-predictions-1-2026-12-01-10-05-09-0f3e-4a.gz"
    assert object_time(name) == datetime(2026, 12, 1, 10, 5, 9, tzinfo=UTC)
    assert object_time("archive/predictions/x.gz") is None


def test_the_store_deletes_a_prefix(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path))
    store.put_bytes("reports/w1/drift.html", b"x")
    store.put_bytes("reports/w1/quality.html", b"x")
    store.put_bytes("reports/w2/drift.html", b"x")
    assert store.delete_prefix("reports/w1/") == 2
    assert store.list_keys("reports/") == ["reports/w2/drift.html"]


@pytest.mark.parametrize("kind", ["fifo", "link out"])
def test_a_fifo_or_a_link_out_of_a_folder_archive_is_refused_by_name(
    tmp_path: Path, kind: str
) -> None:
    """The local archive is a trust boundary like the label folder: a FIFO under it once
    would have blocked its window's run for ever (an open waits for a writer), and a link
    would read a file outside the store. Both, read by rows or by DuckDB, are refused by
    name; the window's run fails instead of hanging or reading the host."""
    import os

    from studperf_assets.lib.archive import read_archive

    root = tmp_path / "store"
    store = LocalObjectStore(root=str(root))
    good = write_predictions(store, T0, 3)
    bad = good.replace(".gz", "-x.gz").replace("-10-59-00-", "-10-59-01-")
    path = root / bad
    if kind == "fifo":
        os.mkfifo(path)
    else:
        outside = tmp_path / "secret.gz"
        outside.write_bytes((root / good).read_bytes())
        path.symlink_to(outside)
    archive = store.archive()
    with pytest.raises(UnreadableArchiveObject, match=r"not a regular file|outside the store"):
        read_window(archive, T0, T0 + timedelta(minutes=1))
    with pytest.raises(UnreadableArchiveObject) as refused:
        read_archive(archive, T0, T0 + timedelta(minutes=1), early=timedelta(0))
    assert bad.rsplit("/", 1)[-1] in str(refused.value)


def test_an_object_too_large_once_decompressed_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: a 407 KB object holding one 400 MB line took the code server from 490 MB to
    1.3 GB in one tick. An object larger than MAX_OBJECT_BYTES, stored or decompressed, is
    refused by name before it is held whole (the limit made small here)."""
    import gzip

    from studperf_assets.lib import archive

    monkeypatch.setattr(archive, "MAX_OBJECT_BYTES", 10_000)
    store = LocalObjectStore(root=str(tmp_path))
    key = write_object(store, "predictions", T0, [b"x" * 50_000])
    assert len(gzip.compress(b"x" * 50_000)) < 10_000  # small on disk, large inside
    source = store.archive()
    with pytest.raises(UnreadableArchiveObject, match="decompressed") as refused:
        count_rows(source, key)
    assert key.rsplit("/", 1)[-1] in str(refused.value)
    with pytest.raises(UnreadableArchiveObject, match="decompressed"):
        read_window(source, T0, T0 + timedelta(minutes=1))  # its window's run fails, naming it
