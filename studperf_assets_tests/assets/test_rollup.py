"""monitoring_daily materialized for real: a day of windows recorded in a monitoring
database (SQLite and PostgreSQL) rolled up into its daily_metrics row and metadata."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from dagster import DagsterInstance, instance_for_test, materialize

from studperf_assets.assets.rollup import monitoring_daily
from studperf_assets.lib.daily_rollup import OVER_LABELLED_ROWS
from studperf_assets.lib.incidents import Verdict
from studperf_assets.partitions import monitoring_window_partitions
from studperf_assets.resources.metrics_db import MetricsDatabase
from studperf_assets_tests.resources.test_daily_metrics import metrics_row

pytestmark = pytest.mark.integration
DAY = "2026-11-25"  # a day that has ended: the partitions stop at yesterday (UTC)


def _confusion(right: int, wrong: int) -> list[list[int]]:
    matrix = [[0] * 5 for _ in range(5)]
    matrix[2][2], matrix[3][1] = right, wrong
    return matrix


@pytest.fixture(params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path: Path, pg_databases: Callable[[], str]
) -> MetricsDatabase:
    if request.param == "sqlite":
        return MetricsDatabase(url=f"sqlite:///{tmp_path / 'monitoring.db'}")
    return MetricsDatabase(url=pg_databases().replace("postgresql://", "postgresql+psycopg2://"))


def _materialize(instance: DagsterInstance, database: MetricsDatabase, day: str) -> object:
    return materialize(
        [monitoring_daily],
        partition_key=day,
        resources={"metrics_database": database},
        instance=instance,
    )


def test_a_day_of_windows_becomes_its_row_and_metadata(database: MetricsDatabase) -> None:
    counts = {"A": 0, "B": 20, "C": 180, "D": 0, "F": 0}
    database.record_batch(
        "2026-11-25T10:00:00Z",
        metrics_row(200, 100, drift_share=0.1, small=False, prediction_counts=counts,
                    confusion=_confusion(90, 10), f1_macro=0.5, accuracy=0.9),
    )  # fmt: skip
    database.record_batch(
        "2026-11-25T10:05:00Z",
        metrics_row(50, 0, drift_share=0.5, small=True,
                    prediction_counts={"A": 0, "B": 0, "C": 0, "D": 0, "F": 50}),
    )  # fmt: skip
    database.record_batch("2026-11-26T00:00:00Z", metrics_row(999))  # the next day
    finished = datetime(2026, 11, 25, 10, 20, tzinfo=UTC)
    database.record_verdicts(
        "2026-11-25T10:05:00Z",
        "run-2",
        finished,
        [Verdict("drift", False, {"data_drift": {}}), Verdict("performance", True)],
    )
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(
            str(monitoring_window_partitions.name),
            ["2026-11-25T10:00:00Z", "2026-11-25T10:05:00Z", "2026-11-25T10:10:00Z"],
        )  # the last is closed, not monitored yet
        result = _materialize(instance, database, DAY)
        assert result.success  # type: ignore[attr-defined]
        (event,) = result.asset_materializations_for_node("monitoring_daily")  # type: ignore[attr-defined]
    metadata = {k: v.value for k, v in event.metadata.items()}
    assert (metadata["windows"], metadata["rows"], metadata["labelled_rows"]) == (2, 250, 100)
    assert metadata["small_windows"] == 1 and metadata["windows_without_metrics"] == 1
    assert metadata["drift_share_max"] == 0.5 and metadata["accuracy"] == 0.9
    assert metadata["quality_basis"] == OVER_LABELLED_ROWS
    assert metadata["failing_windows"]["drift"] == 1
    assert metadata["prediction_shares"] == {"A": 0.0, "B": 0.08, "C": 0.72, "D": 0.0, "F": 0.2}
    (row,) = database.daily_metrics()
    assert row["day"] == date(2026, 11, 25) and row["windows"] == 2 and row["accuracy"] == 0.9
    assert row["prediction_shares"]["F"] == 0.2 and row["failing_windows"]["performance"] == 0


def test_a_day_materialized_again_replaces_its_row(database: MetricsDatabase) -> None:
    """Late labels, or a window monitored after the first rollup: the day is run again
    (a backfill) and its one row says the newer figures."""
    database.record_batch("2026-11-25T10:00:00Z", metrics_row(200))
    with instance_for_test() as instance:
        assert _materialize(instance, database, DAY).success  # type: ignore[attr-defined]
        database.record_batch("2026-11-25T11:00:00Z", metrics_row(300))
        assert _materialize(instance, database, DAY).success  # type: ignore[attr-defined]
        assert _materialize(instance, database, "2026-11-24").success  # type: ignore[attr-defined]
    rows = database.daily_metrics()
    assert [(r["day"], r["windows"], r["rows"]) for r in rows] == [
        (date(2026, 11, 24), 0, 0),
        (date(2026, 11, 25), 2, 500),
    ]
