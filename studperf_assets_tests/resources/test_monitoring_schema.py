"""The monitoring database's schema: migrated once whoever races, on SQLite and PostgreSQL;
the tables the code queries are the tables the migrations make; older databases are kept."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from studperf_assets.resources.monitoring_schema import (
    LABEL_KEY_LENGTH,
    METADATA,
    current_revision,
    ensure_schema,
    head_revision,
    stored_key,
)

pytestmark = pytest.mark.integration
PROCESSES = 6
ROUNDS = 8


def _first_use(url: str, barrier: multiprocessing.synchronize.Barrier, out: object) -> None:
    """A monitoring run's first touch of the database: count the usable labels."""
    from studperf_assets.resources.metrics_db import MetricsDatabase, MonitoringDatabaseError

    barrier.wait()
    try:
        MetricsDatabase(url=url).label_count()
        out.put("ok")  # type: ignore[attr-defined]
    except MonitoringDatabaseError as error:
        out.put(f"MonitoringDatabaseError: {error}")  # type: ignore[attr-defined]
    except Exception as error:  # noqa: BLE001 - reported to the test
        out.put(f"{type(error).__name__}: {error}")  # type: ignore[attr-defined]


def _race(url: str) -> list[str]:
    # forked after the imports: each process starts with no engine, as a run process does
    from studperf_assets.resources import metrics_db  # noqa: F401

    fork = multiprocessing.get_context("fork")
    barrier, out = fork.Barrier(PROCESSES), fork.Queue()
    workers = [fork.Process(target=_first_use, args=(url, barrier, out)) for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    return results


def _urls(backend: str, tmp_path: Path, pg_databases: Callable[[], str]) -> list[str]:
    if backend == "sqlite":
        return [f"sqlite:///{tmp_path / f'round{n}.db'}" for n in range(ROUNDS)]
    return [
        pg_databases().replace("postgresql://", "postgresql+psycopg2://") for _ in range(ROUNDS)
    ]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_opening_a_fresh_database_at_once_all_get_one_schema(
    backend: str, tmp_path: Path, pg_databases: Callable[[], str]
) -> None:
    """Field fault: two monitoring runs opening a fresh database both created the tables;
    one failed (reported as "unreachable", which sent a false alert) about 3 times in 40."""
    failures = [
        r for url in _urls(backend, tmp_path, pg_databases) for r in _race(url) if r != "ok"
    ]
    assert failures == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_migrations_make_exactly_the_tables_the_code_queries(
    backend: str, tmp_path: Path, pg_databases: Callable[[], str]
) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    (url,) = _urls(backend, tmp_path, pg_databases)[:1]
    engine = sa.create_engine(url)
    assert ensure_schema(engine) == head_revision()
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), METADATA)
        assert current_revision(connection) == head_revision()
    assert differences == []
    engine.dispose()


def test_a_database_made_before_migrations_is_stamped_and_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    later = {"incidents", "monitoring_status", "check_verdicts", "daily_metrics"}  # 0002-0005
    later |= {"indexed_windows", "prediction_ids"}  # 0006, which replaced prediction_index
    old = sa.MetaData()
    for table in METADATA.sorted_tables:
        if table.name not in later:
            table.to_metadata(old)
    sa.Table(  # as the code made it before migrations
        "prediction_index",
        old,
        sa.Column("partition", sa.String(200), primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
    )
    old.create_all(engine)  # what the code did before migrations
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO label_joins (partition, joined_at, rows, labelled) "
                "VALUES ('batch-000001', '2026-11-30 10:00:00', 200, 12)"
            )
        )
    assert ensure_schema(engine) == head_revision()
    with engine.connect() as connection:
        kept = connection.execute(sa.text("SELECT labelled FROM label_joins")).scalar_one()
        assert sa.inspect(connection).has_table("incidents")
    assert kept == 12


def test_an_over_long_label_key_is_stored_under_a_stable_unique_name() -> None:
    short = "labels/2026-12-01T10/20261201T100000.000000Z-1234abcd.parquet"
    long_a, long_b = "labels/" + "a" * 400, "labels/" + "a" * 399 + "b"
    assert stored_key(short) == short
    assert len(stored_key(long_a)) == LABEL_KEY_LENGTH
    assert stored_key(long_a) == stored_key(long_a) != stored_key(long_b)


def test_a_label_key_that_is_not_printable_text_is_stored_escaped_and_hashed() -> None:
    """Field fault: ``stored_key`` returned short keys unchanged, surrogates included, and
    the database refused to encode them (UnicodeEncodeError on every run)."""
    from studperf_assets.resources.monitoring_schema import key_problem, printable_key

    undecodable = os.fsdecode(b"labels/a/bad\xff.parquet")
    for key in (undecodable, "labels/a/bell\x07.parquet", "labels/a/\u202etxt.parquet"):
        stored = stored_key(key)
        stored.encode("utf-8")
        assert stored.isprintable() and len(stored) <= LABEL_KEY_LENGTH
        assert stored.startswith(printable_key(key)) and key_problem(key)
    assert printable_key(undecodable) == "labels/a/bad\\xff.parquet"
    assert stored_key(undecodable) != stored_key(os.fsdecode(b"labels/a/bad\xfe.parquet"))
    assert key_problem("labels/2026-12-01T10/x.parquet") is None


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_label_files_handled_before_file_versions_stay_handled(
    backend: str, tmp_path: Path, pg_databases: Callable[[], str]
) -> None:
    """Migration 0004 keys the label ledger by file and version. A database at 0002 keeps its
    rows, and a file they name counts as handled whatever its version (it is not read
    again); a file the ledger does not name is read as before."""
    from alembic import command

    from studperf_assets.lib.labels import label_key, write_labels
    from studperf_assets.resources.ground_truth import GroundTruth
    from studperf_assets.resources.metrics_db import MetricsDatabase
    from studperf_assets.resources.monitoring_schema import _alembic_config
    from studperf_assets.resources.object_store import LocalObjectStore
    from studperf_assets_tests.resources.test_ground_truth import soon, students

    (url,) = _urls(backend, tmp_path, pg_databases)[:1]
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), "0002")  # type: ignore[arg-type]
    store = LocalObjectStore(root=str(tmp_path / "monitoring"))
    rejected = label_key(soon())
    store.put_bytes(rejected, b"PAR1 half")  # rejected under 0002; since rewritten
    ingested = write_labels(store, students(2, 23_000_000), soon())
    with engine.begin() as connection:
        for key, status in ((rejected, "rejected"), (ingested, "ingested")):
            connection.execute(
                sa.text(
                    "INSERT INTO label_files (key, status, rows, new_labels, duplicates, "
                    "conflicts, problem, ingested_at) VALUES (:key, :status, 0, 0, 0, 0, "
                    "'x', '2026-11-30 10:00:00')"
                ),
                {"key": key, "status": status},
            )
    assert ensure_schema(engine) == head_revision()
    with engine.connect() as connection:
        kept = connection.execute(
            sa.text("SELECT key, version, status FROM label_files ORDER BY status")
        ).all()
    assert [tuple(row) for row in kept] == [
        (ingested, "*", "ingested"),
        (rejected, "*", "rejected"),
    ]
    store.put_bytes(rejected, b"PAR1 rewritten, still handled")
    fresh = write_labels(store, students(2, 23_000_100), soon())
    truth = GroundTruth(store=store, database=MetricsDatabase(url=url))
    assert truth.unseen_files() == [fresh]
    intake = truth.ingest_new()
    assert [f.key for f in intake.ingested] == [fresh] and intake.rejected == {}
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_window_rows_from_before_the_daily_rollup_are_kept_and_summed(
    backend: str, tmp_path: Path, pg_databases: Callable[[], str]
) -> None:
    """Migration 0005 adds ``daily_metrics`` and three columns of ``batch_metrics``: a
    window recorded at 0004 keeps its row (its new columns empty), and its day is rolled
    up from its own f1 (a weighted mean of windows, said so)."""
    from datetime import date

    from alembic import command

    from studperf_assets.lib.daily_rollup import WEIGHTED_WINDOW_MEAN, summarise_day
    from studperf_assets.resources.metrics_db import MetricsDatabase
    from studperf_assets.resources.monitoring_schema import _alembic_config

    (url,) = _urls(backend, tmp_path, pg_databases)[:1]
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), "0004")  # type: ignore[arg-type]
        connection.execute(
            sa.text(
                "INSERT INTO batch_metrics (partition, model_version, rows, labelled_rows, "
                "drift_share, prediction_drift, f1_macro, accuracy, feature_scores, "
                "report_uri, updated_at) VALUES ('2026-12-01T10:00:00Z', 'v1', 200, 40, "
                "0.25, 0.05, 0.6, 0.7, '{}', '', '2026-12-01 10:07:00')"
            )
        )
    assert ensure_schema(engine) == head_revision()
    engine.dispose()
    database = MetricsDatabase(url=url)
    (row,) = database.day_windows(date(2026, 12, 1))
    assert row["rows"] == 200 and row["confusion"] is None and row["small"] is None
    summary = summarise_day(date(2026, 12, 1), [row])
    assert summary.quality_basis == WEIGHTED_WINDOW_MEAN and summary.f1_macro == 0.6


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_prediction_index_is_carried_over_hashed(
    backend: str, tmp_path: Path, pg_databases: Callable[[], str]
) -> None:
    """Migration 0006 replaces ``prediction_index`` (window key and request ID per
    prediction) with hashes: windows indexed at 0005 are still found by their requests."""
    from alembic import command

    from studperf_assets.resources.metrics_db import MetricsDatabase
    from studperf_assets.resources.monitoring_schema import _alembic_config

    (url,) = _urls(backend, tmp_path, pg_databases)[:1]
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), "0005")  # type: ignore[arg-type]
        for window, ids in (("2026-12-01T10:00:00Z", "abc"), ("2026-12-01T10:01:00Z", "de")):
            for request_id in ids:
                connection.execute(
                    sa.text("INSERT INTO prediction_index VALUES (:p, :r)"),
                    {"p": window, "r": f"req-{request_id}"},
                )
    assert ensure_schema(engine) == head_revision()
    with engine.connect() as connection:
        assert not sa.inspect(connection).has_table("prediction_index")
    engine.dispose()
    database = MetricsDatabase(url=url)
    assert database.partitions_for(["req-b"]) == {"2026-12-01T10:00:00Z"}
    assert database.partitions_for(["req-a", "req-e"]) == {
        "2026-12-01T10:00:00Z",
        "2026-12-01T10:01:00Z",
    }
    assert database.partitions_for(["req-z"]) == set()
    assert database.forget_windows(["2026-12-01T10:00:00Z"]) == 3
