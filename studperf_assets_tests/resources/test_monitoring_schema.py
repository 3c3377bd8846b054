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
    old_tables = [
        t
        for t in METADATA.sorted_tables
        if t.name not in ("incidents", "monitoring_status", "check_verdicts")  # 0002, 0003
    ]
    METADATA.create_all(engine, tables=old_tables)  # what the code did before migrations
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
