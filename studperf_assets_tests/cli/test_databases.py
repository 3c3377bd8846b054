"""`studperf init-db` against the real PostgreSQL server: what CD runs after terraform apply."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg2
import pytest

from studperf_assets.cli.databases import ensure_databases
from studperf_assets_tests.conftest import PG_URL


def _existing(names: list[str]) -> set[str]:
    with psycopg2.connect(PG_URL) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,))
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture
def database_names() -> Iterator[list[str]]:
    suffix = uuid.uuid4().hex[:8]
    names = [f"studperf_test_{suffix}_mlflow", f"studperf_test_{suffix}_monitoring"]
    yield names
    admin = psycopg2.connect(PG_URL)
    admin.autocommit = True
    with admin.cursor() as cursor:
        for name in names:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_init_db_creates_the_missing_databases_once(database_names: list[str]) -> None:
    server_url = PG_URL.replace("postgresql://", "postgresql+psycopg2://", 1)
    command = [sys.executable, "-m", "studperf_assets.cli", "init-db", "--server-url", server_url]
    first = subprocess.run(
        [*command, "--databases", *database_names], capture_output=True, text=True, check=True
    )
    assert _existing(database_names) == set(database_names)
    assert f"created {', '.join(database_names)}" in first.stdout
    second = subprocess.run(
        [*command, "--databases", *database_names], capture_output=True, text=True, check=True
    )
    assert "created none" in second.stdout
    migrated = subprocess.run(
        [*command, "--databases", *database_names, "--monitoring-database", database_names[1]],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"monitoring database {database_names[1]}: schema at revision" in migrated.stdout
    monitoring_url = PG_URL.rsplit("/", 1)[0] + "/" + database_names[1]
    with psycopg2.connect(monitoring_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM incidents")
        assert cursor.fetchone() == (0,)


def test_init_db_creates_only_what_is_missing(database_names: list[str]) -> None:
    server_url = PG_URL.replace("postgresql://", "postgresql+psycopg2://", 1)
    assert ensure_databases(server_url, database_names[:1]) == database_names[:1]
    assert ensure_databases(server_url, database_names) == database_names[1:]


@pytest.mark.parametrize("name", ["Mlflow", "a-b", 'x"; DROP DATABASE postgres; --', "", "9x"])
def test_init_db_refuses_names_that_would_need_quoting(name: str) -> None:
    server_url = PG_URL.replace("postgresql://", "postgresql+psycopg2://", 1)
    with pytest.raises(ValueError, match="database name"):
        ensure_databases(server_url, [name])


def test_init_db_without_a_server_says_what_it_needs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "studperf_assets.cli", "init-db", "--server-url", ""],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "STUDPERF_DAGSTER_PG_URL" in result.stderr
