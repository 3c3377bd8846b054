"""The monitoring database's per-prediction rows on SQLite and PostgreSQL: retired windows
take their prediction index and label joins with them (``forget_windows``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from studperf_assets.resources.metrics_db import IN_CHUNK, MetricsDatabase

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path: Path, pg_databases: Callable[[], str]
) -> MetricsDatabase:
    if request.param == "sqlite":
        return MetricsDatabase(url=f"sqlite:///{tmp_path / 'monitoring.db'}")
    return MetricsDatabase(url=pg_databases().replace("postgresql://", "postgresql+psycopg2://"))


def test_forgetting_windows_drops_their_index_rows_only(database: MetricsDatabase) -> None:
    # more windows than one IN (...) holds, so the deletion is chunked like the reads
    retired = [
        f"2026-11-2{d}T{h:02d}:{m:02d}:00Z" for d in (1, 2) for h in range(8) for m in range(60)
    ]
    assert len(retired) > IN_CHUNK
    kept = "2026-12-01T10:00:00Z"
    for key in [*retired[:3], retired[-1], kept]:
        database.index_predictions(key, [f"{key}-r{i}" for i in range(4)])
        database.record_label_join(key, datetime.now(UTC), rows=4, labelled=1)
    deleted = database.forget_windows(retired)
    assert deleted == 4 * 4
    ids = [f"{k}-r{i}" for k in (*retired[:3], retired[-1], kept) for i in range(4)]
    assert database.partitions_for(ids) == {kept}
    assert set(database.label_joins([*retired[:3], retired[-1], kept])) == {kept}
    assert database.forget_windows([]) == 0


def _at_once(database: MetricsDatabase, write: Callable[[], None]) -> None:
    """``write`` twice: the second while the first's transaction is about to commit (its
    commit held back a second), as two runs of one window can."""
    import threading
    import time

    import sqlalchemy as sa

    from studperf_assets.resources.metrics_db import _engine

    holding = threading.Event()

    def slow_commit(_connection: sa.Connection) -> None:
        if threading.current_thread().name == "first":
            holding.set()
            time.sleep(1.0)

    errors: list[BaseException] = []

    def first() -> None:
        try:
            write()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    engine = _engine(database.url)
    sa.event.listen(engine, "commit", slow_commit)
    try:
        thread = threading.Thread(target=first, name="first")
        thread.start()
        assert holding.wait(10)
        write()
        thread.join()
    finally:
        sa.event.remove(engine, "commit", slow_commit)
    assert not errors, errors


def test_two_runs_of_one_window_index_it_at_once(database: MetricsDatabase) -> None:
    """Field fault (review of issue 21): two runs of one window (a late-labels re-run and a
    late-objects re-run; ``max_concurrent_runs`` is 2) re-indexing it at once. The second
    one's DELETE could not see the rows the first was inserting, and its INSERT then failed
    with UniqueViolation on PostgreSQL: the run failed at ``prediction_windows``, a false
    "not monitored" incident. A run now holds its window's row while it replaces the index."""
    import sqlalchemy as sa

    from studperf_assets.resources.metrics_db import _engine

    key = "2026-12-01T10:00:00Z"
    ids = [f"req-{i}" for i in range(2_000)]
    database.index_predictions(key, ids)  # the window's first run
    _at_once(database, lambda: database.index_predictions(key, ids))
    assert database.partitions_for(ids[:1]) == {key}
    with _engine(database.url).connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM prediction_ids")).scalar() == 2_000


def test_two_runs_of_one_window_record_its_label_join_at_once(database: MetricsDatabase) -> None:
    """The same race on ``label_joins`` (delete, then insert): UniqueViolation on
    PostgreSQL. It is one upsert now, as ``record_day`` is."""
    key = "2026-12-01T10:00:00Z"
    database.record_label_join(key, datetime.now(UTC), rows=5, labelled=1)
    _at_once(database, lambda: database.record_label_join(key, datetime.now(UTC), 5, 4))
    assert database.label_joins([key])[key]["labelled"] == 4
