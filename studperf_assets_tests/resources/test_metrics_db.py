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
