"""Ground truth: labels join the prediction they name, are ingested once, and every bad or
conflicting label is reported by name. Local folder + SQLite here; the same code runs on
S3 (moto server) and PostgreSQL in assets/test_monitoring.py."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from dagster import SensorResult, build_sensor_context

from studperf_assets.lib.labels import (
    REQUEST_ID,
    LabelFileError,
    label_key,
    read_label_file,
    write_labels,
)
from studperf_assets.lib.simulation import request_id_for
from studperf_assets.local.traffic import reserve_ids, training_generator
from studperf_assets.resources.ground_truth import GroundTruth
from studperf_assets.resources.metrics_db import MetricsDatabase
from studperf_assets.resources.object_store import LocalObjectStore, S3ObjectStore
from studperf_assets.sensors import build_sensors


@pytest.fixture
def truth(tmp_path: Path) -> GroundTruth:
    return GroundTruth(
        store=LocalObjectStore(root=str(tmp_path / "monitoring")),
        database=MetricsDatabase(url=f"sqlite:///{tmp_path / 'monitoring.db'}"),
    )


def students(count: int, first_id: int, seed: int = 0) -> pd.DataFrame:
    rows = training_generator(seed=seed).sample(count, first_id=first_id)
    rows.insert(0, REQUEST_ID, [request_id_for(int(i)) for i in rows["StudentID"]])
    return rows


def soon(seconds: float = 0.0) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def test_a_label_joins_its_prediction_not_its_student(truth: GroundTruth) -> None:
    # one student scored twice (two requests), with a different grade each time
    first = students(1, 5_000_000)
    second = first.assign(request_id="retest-1", GradeClass=(int(first["GradeClass"][0]) + 1) % 5)
    write_labels(truth.store, pd.concat([first, second]), soon())
    truth.database.index_predictions("batch-000001", [first["request_id"][0], "retest-1"])
    intake = truth.ingest_new()
    assert intake.new_labels == 2 and not intake.conflicts and not intake.rejected
    ids = [first["request_id"][0], "retest-1"]
    labels = truth.labels_of(ids).set_index(REQUEST_ID)["GradeClass"].to_dict()
    assert labels == {
        first["request_id"][0]: int(first["GradeClass"][0]),
        "retest-1": int(second["GradeClass"].iloc[0]),
    }


def test_duplicates_are_counted_and_conflicts_reported_not_resolved(truth: GroundTruth) -> None:
    rows = students(3, 6_000_000)
    write_labels(truth.store, rows, soon())
    again = rows.copy()
    again.loc[2, "GradeClass"] = (int(rows["GradeClass"][2]) + 2) % 5  # a different grade
    write_labels(truth.store, again, soon())
    truth.database.index_predictions("batch-000001", rows[REQUEST_ID])
    intake = truth.ingest_new()
    assert intake.new_labels == 3 and intake.duplicates == 2
    assert intake.conflicts == [rows[REQUEST_ID][2]]
    joined = truth.labels_of(rows[REQUEST_ID]).set_index(REQUEST_ID)
    assert joined.loc[rows[REQUEST_ID][2], "conflict"]
    assert not joined.drop(rows[REQUEST_ID][2])["conflict"].any()
    assert truth.usable_labels() == 2  # a conflicting label trains nothing


def _put(truth: GroundTruth, frame: pd.DataFrame | None, raw: bytes = b"") -> str:
    key = label_key(soon())
    if frame is not None:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        raw = buffer.getvalue()
    truth.store.put_bytes(key, raw)
    return key


def test_bad_label_files_are_rejected_by_name_and_never_stall(truth: GroundTruth) -> None:
    rows = students(4, 7_000_000).assign(available_at=pd.Timestamp.now(tz="UTC"))
    no_time = _put(truth, rows.drop(columns=["available_at"]))
    bad_grade = _put(truth, rows.assign(GradeClass=9))
    corrupt = _put(truth, None, b"PAR1 this is not parquet")
    good = write_labels(truth.store, students(2, 7_100_000), soon())
    intake = truth.ingest_new()
    assert set(intake.rejected) == {no_time, bad_grade, corrupt}
    assert "missing column(s) available_at" in intake.rejected[no_time]
    assert "GradeClass" in intake.rejected[bad_grade] and "[0, 4]" in intake.rejected[bad_grade]
    assert "not a readable Parquet file" in intake.rejected[corrupt]
    assert [f.key for f in intake.ingested] == [good] and intake.new_labels == 2
    assert truth.ingest_new().rejected == {}  # reported once, not on every run


def store_of(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """A monitoring store in a folder, or in a fresh bucket on the moto server."""
    if backend == "s3":
        request.getfixturevalue("moto_server")
        bucket = f"store-{tmp_path.name[-8:].lower().replace('_', '-')}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        from dagster_aws.s3 import S3Resource

        return S3ObjectStore(bucket=bucket, prefix="monitoring", s3=S3Resource())
    return LocalObjectStore(root=str(tmp_path))


@pytest.mark.parametrize("backend", ["folder", "s3"])
def test_a_label_file_over_the_size_limit_is_refused_unread(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A monitoring run reads a label file whole: one too large is rejected by its size
    (from the file system or S3's answer), before its bytes are read."""
    store = store_of(backend, tmp_path, request)
    key = write_labels(store, students(3, 6_000_000), soon())
    assert len(read_label_file(store, key)) == 3  # the default limit: 128 MiB
    with pytest.raises(LabelFileError, match=r"bytes, over the 100-byte limit") as refused:
        read_label_file(store, key, max_bytes=100)
    assert key in str(refused.value)


READS: list[str] = []


class CountingStore(LocalObjectStore):
    def get_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        READS.append(key)
        return super().get_bytes(key, max_bytes)

    def get_versioned(self, key: str, max_bytes: int | None = None) -> tuple[bytes, str]:
        READS.append(key)
        return super().get_versioned(key, max_bytes)


def test_ingestion_reads_only_new_files(tmp_path: Path) -> None:
    truth = GroundTruth(
        store=CountingStore(root=str(tmp_path / "m")),
        database=MetricsDatabase(url=f"sqlite:///{tmp_path / 'db.sqlite'}"),
    )
    for n in range(5):
        write_labels(truth.store, students(2, 8_000_000 + 10 * n), soon())
    assert truth.ingest_new().new_labels == 10
    READS.clear()
    assert truth.ingest_new().new_labels == 0 and READS == []
    newest = write_labels(truth.store, students(2, 8_100_000), soon())
    assert truth.ingest_new().new_labels == 2 and [newest] == READS


def test_labels_due_later_are_not_read_yet(truth: GroundTruth) -> None:
    write_labels(truth.store, students(2, 9_000_000), soon(3600))
    assert truth.ingest_new().ingested == []
    assert truth.ingest_new(now=soon(3601)).new_labels == 2


def test_label_files_must_not_be_named_in_the_past(truth: GroundTruth) -> None:
    with pytest.raises(ValueError, match="in the past"):
        write_labels(truth.store, students(1, 9_100_000), datetime.now(UTC) - timedelta(hours=1))


@pytest.mark.parametrize("backend", ["folder", "s3"])
def test_id_reservations_never_overlap_even_when_racing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = store_of(backend, tmp_path, request)
    blocks: list[tuple[int, int]] = []
    counts = [50, 7, 300, 1, 120, 64]

    def reserve(count: int) -> None:
        blocks.append((reserve_ids(store, count), count))

    threads = [threading.Thread(target=reserve, args=(c,)) for c in counts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [i for start, count in blocks for i in range(start, start + count)]
    assert len(ids) == sum(counts) == len(set(ids))


def _late_labels_tick(truth: GroundTruth, cursor: str | None) -> tuple[Any, str | None]:
    (sensor,) = [s for s in build_sensors() if s.name == "late_labels_sensor"]
    resources = {"ground_truth": truth, "metrics_database": truth.database}
    with build_sensor_context(cursor=cursor, resources=resources) as context:
        result: Any = sensor(context)
        return result, result.cursor if isinstance(result, SensorResult) else context.cursor


def test_late_labels_rerun_only_batches_that_joined_before_them(truth: GroundTruth) -> None:
    early = students(10, 10_000_000)
    late = students(10, 10_000_100)
    database = truth.database
    # batch 1 joined after its labels arrived; batch 2 joined before its labels came
    write_labels(truth.store, early, soon())
    database.index_predictions("batch-000001", early[REQUEST_ID])
    database.index_predictions("batch-000002", late[REQUEST_ID])
    truth.ingest_new()
    now = datetime.now(UTC)
    database.record_label_join("batch-000001", now, rows=10, labelled=10)
    database.record_label_join("batch-000002", now, rows=10, labelled=0)
    result, cursor = _late_labels_tick(truth, None)
    assert result.run_requests == []  # batch 1 has its labels, batch 2's have not come
    write_labels(truth.store, late, soon())
    result, cursor = _late_labels_tick(truth, cursor)
    assert [r.partition_key for r in result.run_requests] == ["batch-000002"]
    # until a run ingests the file, each tick asks again under the same run key (the daemon
    # launches a run key once)...
    again, cursor = _late_labels_tick(truth, cursor)
    assert [r.run_key for r in again.run_requests] == [r.run_key for r in result.run_requests]
    truth.ingest_new()  # ...the re-run ingests it and joins
    database.record_label_join("batch-000002", datetime.now(UTC), rows=10, labelled=10)
    done, cursor = _late_labels_tick(truth, cursor)
    assert getattr(done, "run_requests", None) in (None, [])
    assert truth.unseen_files() == []


def test_a_batch_still_on_its_way_is_left_to_its_own_run(truth: GroundTruth) -> None:
    rows = students(10, 11_000_000)
    truth.database.index_predictions("batch-000003", rows[REQUEST_ID])  # run under way
    write_labels(truth.store, rows, soon())
    result, cursor = _late_labels_tick(truth, None)
    assert result.run_requests == []  # it will ingest them itself...
    truth.database.record_label_join("batch-000003", datetime.now(UTC), rows=10, labelled=0)
    result, cursor = _late_labels_tick(truth, cursor)  # ...unless it joined before they came
    assert [r.partition_key for r in result.run_requests] == ["batch-000003"]


WINDOW = "2026-12-01T10:00:00Z"


def _materialize_window(tmp_path: Path, objects: list[list[Any]]) -> Any:
    """prediction_windows over archive objects named inside the window ``WINDOW``."""
    from datetime import timedelta

    from dagster import DagsterInstance, materialize

    from studperf_assets.assets.monitoring import prediction_windows
    from studperf_assets.deployment import Deployment
    from studperf_assets.lib.windows import window_start
    from studperf_assets.resources import resources_for
    from studperf_assets_tests.archive_objects import write_object

    resources = resources_for(Deployment(home=tmp_path))
    start = window_start(WINDOW)
    for n, lines in enumerate(objects):
        write_object(resources["object_store"], "predictions", start + timedelta(seconds=n), lines)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("monitoring_windows", [WINDOW])
    config = {"end": "2026-12-01T10:01:00Z", "small": False}
    return materialize(
        [prediction_windows],
        partition_key=WINDOW,
        resources=resources,
        instance=instance,
        run_config={"ops": {"prediction_windows": {"config": config}}},
        raise_on_error=False,
    )


def test_records_archived_twice_count_once(tmp_path: Path) -> None:
    from studperf_assets_tests.archive_objects import prediction

    records = [prediction(n) for n in range(4)]
    result = _materialize_window(tmp_path, [records, [records[0], records[0], records[2]]])
    assert result.success
    (materialization,) = result.asset_materializations_for_node("prediction_windows")
    assert materialization.metadata["rows"].value == 4
    assert materialization.metadata["duplicates_removed"].value == 3


def test_a_corrupt_archive_object_fails_the_run_naming_it(tmp_path: Path) -> None:
    from studperf_assets.deployment import Deployment
    from studperf_assets.resources import resources_for

    store = resources_for(Deployment(home=tmp_path))["object_store"]
    key = "archive/predictions/2026/12/01/10/s-1-2026-12-01-10-00-30-abc.gz"
    store.put_bytes(key, b"not gzip")
    result = _materialize_window(tmp_path, [])
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = str(failure.step_failure_data.error)
    assert f"window {WINDOW}" in message and key in message and "not readable GZIP" in message


@pytest.fixture(params=["sqlite", "postgresql"])
def any_truth(request: pytest.FixtureRequest, tmp_path: Path) -> GroundTruth:
    """Ground truth on a folder, with the monitoring database on SQLite or PostgreSQL (which,
    unlike SQLite, enforces column lengths)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'monitoring.db'}"
    else:
        url = request.getfixturevalue("pg_databases")().replace(
            "postgresql://", "postgresql+psycopg2://"
        )
    return GroundTruth(
        store=LocalObjectStore(root=str(tmp_path / "monitoring")),
        database=MetricsDatabase(url=url),
    )


def _named(truth: GroundTruth, rows: pd.DataFrame, key: str) -> str:
    """A label file put under ``key`` as a writer with its own clock (or naming) would."""
    frame = rows.assign(available_at=pd.Timestamp.now(tz="UTC"))
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    truth.store.put_bytes(key, buffer.getvalue())
    return key


@pytest.mark.parametrize("behind", [timedelta(minutes=5), timedelta(minutes=3), timedelta(days=2)])
def test_a_writer_whose_clock_is_behind_loses_no_labels(
    any_truth: GroundTruth, behind: timedelta
) -> None:
    """Field fault: a file named by a clock 5 minutes behind (or that became visible more
    than 2 minutes after its name) was never ingested once a newer file had been."""
    truth = any_truth
    write_labels(truth.store, students(2, 13_000_000), soon())
    assert truth.ingest_new().new_labels == 2
    late = _named(truth, students(3, 13_000_100), label_key(datetime.now(UTC) - behind))
    intake = truth.ingest_new()
    assert [f.key for f in intake.ingested] == [late] and intake.new_labels == 3
    assert truth.unseen_files() == []


def test_a_writer_whose_clock_is_ahead_is_read_now(any_truth: GroundTruth) -> None:
    """Only the near future postpones a file (delayed labels); a name hours ahead is a clock
    that is wrong, and waiting for it would hold the labels for as long."""
    truth = any_truth
    delayed = write_labels(truth.store, students(2, 14_000_000), soon(600))
    ahead = _named(truth, students(2, 14_000_100), label_key(soon(6 * 3600)))
    assert [f.key for f in truth.ingest_new().ingested] == [ahead]
    assert [f.key for f in truth.ingest_new(now=soon(601)).ingested] == [delayed]


def test_every_file_under_labels_is_ingested_or_rejected_by_name(any_truth: GroundTruth) -> None:
    truth = any_truth
    # not Parquet, and a key longer than its column (folders: a file name has at most 255)
    long_name = "labels/" + "export-folder/" * 24 + "report.csv"
    assert len(long_name) > 300
    truth.store.put_bytes(long_name, b"request_id,GradeClass\n1,2\n")
    misnamed = _named(truth, students(2, 15_000_000), "labels/from-the-school.parquet")
    odd_folder = _named(truth, students(1, 15_000_100), "labels/2026/12/export.parquet")
    intake = truth.ingest_new()
    assert set(intake.rejected) == {long_name}
    assert "not a .parquet file" in intake.rejected[long_name]
    assert sorted(f.key for f in intake.ingested) == sorted([misnamed, odd_folder])
    again = truth.ingest_new()  # met once, never again
    assert again.rejected == {} and again.ingested == [] and truth.unseen_files() == []


@pytest.mark.parametrize("length", [129, 200, 5000])
def test_an_over_long_request_id_rejects_its_file_and_blinds_nothing(
    any_truth: GroundTruth, length: int
) -> None:
    """Field fault (PostgreSQL): a 200-character request_id raised StringDataRightTruncation,
    which failed every later monitoring run, meeting the file again each time."""
    truth = any_truth
    rows = students(3, 16_000_000)
    rows.loc[1, REQUEST_ID] = "r" * length
    bad = write_labels(truth.store, rows, soon())
    good = write_labels(truth.store, students(2, 16_000_100), soon())
    intake = truth.ingest_new()
    assert list(intake.rejected) == [bad] and "invalid request_id (row 2" in intake.rejected[bad]
    assert [f.key for f in intake.ingested] == [good]
    assert truth.ingest_new().rejected == {} and truth.usable_labels() == 2


def test_a_value_the_database_refuses_rejects_the_file_not_the_run(
    any_truth: GroundTruth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever bound validation did not foresee, a DataError rejects the file, by name."""
    import sqlalchemy as sa

    truth = any_truth

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise sa.exc.DataError("INSERT", {}, Exception("value too long for type character varying"))

    refused = write_labels(truth.store, students(2, 17_000_000), soon())
    monkeypatch.setattr(type(truth.database), "_ingest", refuse)
    intake = truth.ingest_new()
    assert list(intake.rejected) == [refused]
    assert "the database refused it (value too long" in intake.rejected[refused]


def _raw_file(truth: GroundTruth, frame: pd.DataFrame) -> str:
    """A label file written as any Parquet writer would, values exactly as given."""
    key = label_key(soon())
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    truth.store.put_bytes(key, buffer.getvalue())
    return key


BAD_COLUMNS: dict[str, tuple[str, Any, str]] = {
    # name: (column, values for rows 0..2, what the problem must say)
    "unparseable available_at": ("available_at", ["garbage", "2026-01-01", "x"], "available_at"),
    "list available_at": ("available_at", [[1], [2], [3]], "available_at"),
    "integer available_at": ("available_at", [1, 2, 3], "available_at"),
    "available_at out of range": ("available_at", ["1500-01-01"] * 3, "available_at"),
    "list feature": ("StudyTimeWeekly", [[1.0], [2.0], [3.0]], "StudyTimeWeekly"),
    "boolean feature": ("Absences", [True, False, True], "Absences"),
    "text grade": ("GradeClass", ["A", "B", "C"], "GradeClass"),
    "infinite GPA": ("GPA", [float("inf"), 1.0, 2.0], "GPA"),
    "list request_id": ("request_id", [["a"], ["b"], ["c"]], "request_id"),
    "boolean request_id": ("request_id", [True, False, True], "request_id"),
}


@pytest.mark.parametrize("case", sorted(BAD_COLUMNS))
def test_a_label_file_with_any_unusable_value_is_rejected_once_by_name(
    any_truth: GroundTruth, case: str
) -> None:
    """Field fault: an available_at of "garbage" (or a list) failed every monitoring run
    (DateParseError / TypeError in the database insert), on SQLite and PostgreSQL. Every
    column is validated before anything reaches the database."""
    truth = any_truth
    column, values, named = BAD_COLUMNS[case]
    rows = students(3, 18_000_000).assign(available_at=pd.Timestamp.now(tz="UTC"))
    rows[column] = pd.Series(values, dtype=object)
    bad = _raw_file(truth, rows)
    good = write_labels(truth.store, students(2, 18_000_100), soon())
    intake = truth.ingest_new()
    assert list(intake.rejected) == [bad], intake.rejected
    assert named in intake.rejected[bad]
    assert [f.key for f in intake.ingested] == [good]
    again = truth.ingest_new()
    assert again.rejected == {} and again.ingested == [] and truth.unseen_files() == []


def test_ingesting_a_file_raises_nothing_but_a_rejection(
    any_truth: GroundTruth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever goes wrong storing one file's labels (a bug, a value no check foresaw), the
    file is rejected with the error named; only an unreachable database stays loud."""
    from studperf_assets.resources import metrics_db

    truth = any_truth
    broken = write_labels(truth.store, students(2, 19_000_000), soon())

    def resolve(*_args: Any) -> Any:
        raise TypeError("unhashable type: 'list'")

    monkeypatch.setattr(metrics_db, "resolve", resolve)
    intake = truth.ingest_new()
    assert list(intake.rejected) == [broken]
    assert "TypeError: unhashable type" in intake.rejected[broken]

    def outage(*_args: Any) -> Any:
        raise metrics_db.MonitoringDatabaseError("monitoring database x unreachable: down")

    write_labels(truth.store, students(2, 19_000_100), soon())
    monkeypatch.setattr(type(truth.database), "_ingest", outage)
    with pytest.raises(metrics_db.MonitoringDatabaseError):
        truth.ingest_new()


UNSTORABLE_NAMES = {
    "not UTF-8": b"labels/a/bad\xff.parquet",
    "a control character": b"labels/a/bad\x07bell.parquet",
    "a bidi override": "labels/a/\u202etxt.parquet".encode(),
    "over-long": ("labels/" + "deep-export-folder/" * 17 + "labels.parquet").encode(),
}


@pytest.mark.parametrize("case", sorted(UNSTORABLE_NAMES))
def test_a_file_whose_name_cannot_be_stored_is_rejected_once_by_an_escaped_name(
    any_truth: GroundTruth, case: str
) -> None:
    """Field fault: a label file named ``bad\\xff.parquet`` on a local store failed every
    monitoring run and the late-labels sensor with UnicodeEncodeError (surrogates). A name
    the ledger cannot keep as it is is stored escaped and hashed, and the file rejected."""
    import os

    truth = any_truth
    name = UNSTORABLE_NAMES[case]
    assert isinstance(truth.store, LocalObjectStore)
    path = os.fsencode(truth.store.root) + b"/" + name
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rows = students(2, 20_000_000).assign(available_at=pd.Timestamp.now(tz="UTC"))
    buffer = io.BytesIO()
    rows.to_parquet(buffer, index=False)
    with open(path, "wb") as fh:
        fh.write(buffer.getvalue())
    good = write_labels(truth.store, students(2, 20_000_100), soon())
    _, cursor = _late_labels_tick(truth, None)  # the sensor lists it too
    intake = truth.ingest_new()
    assert [f.key for f in intake.ingested] == [good]
    ((shown, problem),) = intake.rejected.items()
    shown.encode("utf-8")  # printable: e-mails, logs and metadata can carry it
    assert all(ch.isprintable() for ch in shown), shown
    assert "name" in problem and "rename" in problem
    assert truth.ingest_new().rejected == {} and truth.unseen_files() == []
    _late_labels_tick(truth, cursor)


def _parquet(rows: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    rows.assign(available_at=pd.Timestamp.now(tz="UTC")).to_parquet(buffer, index=False)
    return buffer.getvalue()


@pytest.fixture(params=["folder+sqlite", "folder+postgresql", "s3+sqlite", "s3+postgresql"])
def versioned_truth(request: pytest.FixtureRequest, tmp_path: Path) -> GroundTruth:
    """Ground truth on a folder or an S3 bucket (moto), the ledger on SQLite or PostgreSQL."""
    store, database = request.param.split("+")
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'monitoring.db'}"
    else:
        url = request.getfixturevalue("pg_databases")().replace(
            "postgresql://", "postgresql+psycopg2://"
        )
    return GroundTruth(
        store=store_of("s3" if store == "s3" else "folder", tmp_path, request),
        database=MetricsDatabase(url=url),
    )


def test_a_rejected_label_file_rewritten_under_its_key_is_read_again(
    versioned_truth: GroundTruth,
) -> None:
    """Field fault: a label file rejected once (a ``cp`` caught half-written) was never read
    again, even when rewritten correctly under the same key: the ledger knew only names.
    Now it knows each file's version (ETag; size and mtime_ns): a changed file is read
    again, an unchanged one never, and labels read twice count once."""
    truth = versioned_truth
    rows = students(4, 21_000_000)
    whole = _parquet(rows)
    key = label_key(soon())
    truth.store.put_bytes(key, whole[: len(whole) // 2])  # caught half-written
    first = truth.ingest_new()
    assert list(first.rejected) == [key] and "not a readable Parquet file" in first.rejected[key]
    assert truth.ingest_new().rejected == {} and truth.unseen_files() == []  # not again
    truth.store.put_bytes(key, whole)  # the copy completes
    assert truth.unseen_files() == [key]
    second = truth.ingest_new()
    assert [f.key for f in second.ingested] == [key] and second.new_labels == 4
    again = truth.ingest_new()  # unchanged: never read again
    assert again.ingested == [] and again.rejected == {} and truth.unseen_files() == []
    assert truth.usable_labels() == 4
    # the same labels rewritten with two more: only the new ones count, none twice
    more = pd.concat([rows, students(2, 21_000_100)], ignore_index=True)
    truth.store.put_bytes(key, _parquet(more))
    third = truth.ingest_new()
    assert third.new_labels == 2 and third.duplicates == 4 and not third.conflicts
    assert truth.usable_labels() == 6
    # a rewrite that breaks the file again is rejected again; the labels stay
    truth.store.put_bytes(key, b"PAR1 no longer parquet")
    assert list(truth.ingest_new().rejected) == [key]
    assert truth.usable_labels() == 6 and truth.unseen_files() == []


def test_the_late_labels_sensor_reruns_for_a_rewritten_file(truth: GroundTruth) -> None:
    """A rewritten file is a new run key (the daemon launches a run key once), so the batch
    that missed the rewritten labels is re-run once more; the version rejected is not."""
    rows = students(5, 22_000_000)
    database = truth.database
    database.index_predictions("batch-000001", rows[REQUEST_ID])
    database.record_label_join("batch-000001", datetime.now(UTC), rows=5, labelled=0)
    whole = _parquet(rows)
    key = label_key(soon())
    truth.store.put_bytes(key, whole[:100])
    _, cursor = _late_labels_tick(truth, None)
    assert list(truth.ingest_new().rejected) == [key]
    quiet, cursor = _late_labels_tick(truth, cursor)
    assert getattr(quiet, "run_requests", None) in (None, [])
    truth.store.put_bytes(key, whole)
    result, cursor = _late_labels_tick(truth, cursor)
    assert [r.partition_key for r in result.run_requests] == ["batch-000001"]
    (request,) = result.run_requests
    assert request.run_key.startswith(f"batch-000001@{key}@")  # names the version
    assert truth.ingest_new().new_labels == 5
    after, cursor = _late_labels_tick(truth, cursor)
    assert [r.run_key for r in after.run_requests] == [request.run_key]  # the same file
