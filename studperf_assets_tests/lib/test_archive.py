"""The archive reader: exactly the rows of [t0, t1), predictions and errors, from a folder and
from S3 on the moto server; an object that cannot be read fails naming it."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lambda_service.schema import FEATURE_NAMES
from studperf_assets.lib.archive import (
    FolderArchive,
    S3Archive,
    UnreadableArchiveObject,
    deterministic_name,
    encode_records,
    object_key,
    object_time,
    read_archive,
)

T0 = datetime(2026, 5, 1, 12, 59, 30, tzinfo=UTC)  # the window crosses an hour
T1 = T0 + timedelta(seconds=60)
MS = timedelta(milliseconds=1)
ENGINES = ("duckdb", "pandas")


def iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def prediction(key: str, at: datetime, request_id: str = "") -> bytes:
    body: dict[str, Any] = {
        "model_name": "studperf-grade-class",
        "model_version": "v20260501T120000Z-0123abcd",
        "student_id": 1000,
        "request_id": request_id,
        "grade_class": 2,
        "grade": "C",
        "probabilities": {"A": 0.1, "B": 0.2, "C": 0.4, "D": 0.2, "F": 0.1},
        "student": {name: 1 for name in FEATURE_NAMES},
        "idempotency_key": key,
        "predicted_at": iso(at),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def error(key: str, at: datetime) -> bytes:
    body = {
        "reason": "not JSON",
        "field": None,
        "payload": "{",
        "payload_encoding": "utf-8",
        "payload_truncated": False,
        "idempotency_key": key,
        "partition_key": "p",
        "model_version": "v20260501T120000Z-0123abcd",
        "failed_at": iso(at),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def put(archive: Any, kind: str, oldest: datetime, records: list[bytes], tag: str) -> str:
    key = object_key(
        kind, f"studperf-{kind}-archive", oldest, deterministic_name(kind, "s", tag, tag)
    )
    archive.put_bytes(key, encode_records(records))
    return key


def fill(archive: Any) -> tuple[set[str], set[str]]:
    """Objects around the window, rows on both sides of each bound; returns the keys of the
    predictions and errors inside [T0, T1)."""
    times = {
        "before": T0 - MS,
        "first": T0,
        "middle": T0 + timedelta(seconds=30),
        "last": T1 - MS,
        "after": T1,
    }
    # an object named before T0 holding rows of the window (it spans a buffer interval)
    put(archive, "predictions", T0 - timedelta(seconds=50), [
        prediction("p-before", times["before"]), prediction("p-first", times["first"]),
    ], "a")  # fmt: skip
    put(archive, "predictions", T0 + timedelta(seconds=20), [
        prediction("p-middle", times["middle"], request_id="r-1"),
        prediction("p-last", times["last"]), prediction("p-after", times["after"]),
    ], "b")  # fmt: skip
    # an object named just after T1 with a row of the window (it arrived late)
    put(archive, "predictions", T1 + timedelta(seconds=2), [
        prediction("p-late", T1 - 3 * MS), prediction("p-after-2", T1 + timedelta(seconds=2)),
    ], "c")  # fmt: skip
    put(archive, "errors", T0 - timedelta(seconds=10), [
        error("e-before", times["before"]), error("e-first", times["first"]),
        error("e-last", times["last"]),
    ], "d")  # fmt: skip
    put(archive, "errors", T1, [error("e-after", times["after"])], "e")
    return {"p-first", "p-middle", "p-last", "p-late"}, {"e-first", "e-last"}


def corrupt(archive: Any, far: bool = False) -> None:
    """Objects that could not be read, far outside the window: never opened."""
    at = T0 - timedelta(hours=3) if far else T0 + timedelta(seconds=1)
    key = object_key("predictions", "x", at, deterministic_name("x", "s", "1", "1"))
    archive.put_bytes(key, b"\x1f\x8b not gzip at all")


@pytest.fixture(params=["folder", "s3"])
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "folder":
        return FolderArchive(tmp_path)
    import boto3

    bucket = request.getfixturevalue("s3_bucket")  # the moto server's
    return S3Archive(boto3.client("s3"), bucket, "monitoring")


@pytest.mark.integration
@pytest.mark.parametrize("engine", ENGINES)
def test_reads_exactly_the_rows_of_the_window(archive: Any, engine: Any) -> None:
    predictions, errors = fill(archive)
    corrupt(archive, far=True)  # outside every object the window needs: not opened
    rows = read_archive(archive, T0, T1, engine=engine)
    assert set(rows.predictions["idempotency_key"]) == predictions
    assert len(rows.predictions) == len(predictions)
    assert set(rows.errors["idempotency_key"]) == errors
    assert len(rows.errors) == len(errors)
    first = rows.predictions.iloc[0]
    assert first["idempotency_key"] == "p-first"  # sorted by time
    assert first["predicted_at"] == T0
    assert str(rows.predictions["predicted_at"].dt.tz) == "UTC"
    assert first["StudyTimeWeekly"] == 1 and first["prediction"] == 2
    assert first["prob_C"] == pytest.approx(0.4)
    by_key = rows.predictions.set_index("idempotency_key")
    assert by_key.loc["p-middle", "request_id"] == "r-1"
    assert by_key.loc["p-first", "request_id"] == "p-first"  # no request ID: the key stands in
    assert len(rows.objects["predictions"]) == 3 and len(rows.objects["errors"]) == 2


@pytest.mark.parametrize("engine", ENGINES)
def test_engines_agree_and_an_empty_window_is_empty(tmp_path: Path, engine: Any) -> None:
    archive = FolderArchive(tmp_path)
    fill(archive)
    rows = read_archive(archive, T0 + timedelta(hours=5), T1 + timedelta(hours=5), engine=engine)
    assert rows.predictions.empty and rows.errors.empty
    duck = read_archive(archive, T0, T1, engine="duckdb").predictions
    import pandas as pd

    pd.testing.assert_frame_equal(
        duck, read_archive(archive, T0, T1, engine="pandas").predictions, check_dtype=False
    )


@pytest.mark.integration
@pytest.mark.parametrize("engine", ENGINES)
def test_a_corrupt_gzip_object_fails_naming_it(archive: Any, engine: Any) -> None:
    fill(archive)
    corrupt(archive)
    with pytest.raises(UnreadableArchiveObject, match="not readable GZIP") as raised:
        read_archive(archive, T0, T1, engine=engine)
    assert "archive/predictions/2026/05/01/12/x-1-2026-05-01-12-59-31-" in str(raised.value)
    assert raised.value.key.startswith(("s3://", "/"))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"predicted_at": "2026-05-01T12:59:40.000Z"\n', "line 1 is not JSON"),
        (b"[1, 2]\n", "line 1 is not a JSON object"),
        (b'{"idempotency_key": "k"}\n', "record 1 has no 'predicted_at'"),
    ],
)
def test_a_line_that_is_not_a_record_fails_naming_its_object(
    tmp_path: Path, engine: Any, body: bytes, reason: str
) -> None:
    archive = FolderArchive(tmp_path)
    fill(archive)
    key = object_key("predictions", "bad", T0, deterministic_name("bad", "s", "1", "1"))
    good = prediction("p-good", T0 + MS) + b"\n"
    archive.put_bytes(key, gzip.compress(good + body))
    with pytest.raises(UnreadableArchiveObject, match=reason.replace("1", r"\d")) as raised:
        read_archive(archive, T0, T1, engine=engine)
    assert raised.value.key == str(tmp_path / key)


def test_an_object_without_firehose_time_in_its_name_fails_naming_it(tmp_path: Path) -> None:
    archive = FolderArchive(tmp_path)
    archive.put_bytes("archive/predictions/2026/05/01/12/stray.json.gz", encode_records([]))
    with pytest.raises(UnreadableArchiveObject, match=r"stray\.json\.gz.*no Firehose time"):
        read_archive(archive, T0, T1)


def test_keys_are_firehose_keys() -> None:
    at = datetime(2026, 5, 1, 7, 8, 9, 500_000, tzinfo=UTC)
    key = object_key(
        "errors", "studperf-prod-errors-archive", at, deterministic_name("s", "h", "1", "2")
    )
    assert key.startswith("archive/errors/2026/05/01/07/studperf-prod-errors-archive-1-")
    assert key.endswith(".gz") and "-2026-05-01-07-08-09-" in key
    assert object_time(key) == at.replace(microsecond=0)
    assert deterministic_name("s", "h", "1", "2") == deterministic_name("s", "h", "1", "2")
    assert deterministic_name("s", "h", "1", "2") != deterministic_name("s", "h", "1", "3")
    with pytest.raises(ValueError, match="time zone"):
        read_archive(FolderArchive(Path("/nonexistent")), datetime(2026, 1, 1), T1)
