"""The daily rollup's table on SQLite and PostgreSQL: a day's windows read by their keys,
its row upserted by day, the days rolled up answered for retention."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from studperf_assets.lib.daily_rollup import summarise_day
from studperf_assets.lib.incidents import Verdict
from studperf_assets.resources.metrics_db import MetricsDatabase

pytestmark = pytest.mark.integration
DAY = date(2026, 12, 1)


def metrics_row(rows: int, labelled: int = 0, **fields: object) -> dict[str, object]:
    return {
        "model_version": "v1",
        "rows": rows,
        "labelled_rows": labelled,
        "drift_share": 0.2,
        "prediction_drift": 0.01,
        "target_drift": None,
        "f1_macro": None,
        "accuracy": None,
        "feature_scores": {"Age": 0.01},
        "report_uri": "",
        **fields,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path: Path, pg_databases: Callable[[], str]
) -> MetricsDatabase:
    if request.param == "sqlite":
        return MetricsDatabase(url=f"sqlite:///{tmp_path / 'monitoring.db'}")
    return MetricsDatabase(url=pg_databases().replace("postgresql://", "postgresql+psycopg2://"))


def test_a_days_windows_and_verdicts_are_read_by_their_keys(database: MetricsDatabase) -> None:
    counts = {"A": 0, "B": 10, "C": 0, "D": 0, "F": 0}
    confusion = [[0] * 5 for _ in range(5)]
    confusion[1][1] = 5
    for key in ("2026-11-30T23:59:00Z", "2026-12-01T00:00:00Z", "2026-12-01T23:59:00Z"):
        database.record_batch(
            key,
            metrics_row(10, 5, small=True, prediction_counts=counts, confusion=confusion),
        )
    database.record_batch("2026-12-02T00:00:00Z", metrics_row(10))
    database.record_batch("batch-000001", metrics_row(10))  # a key from before windows
    finished = datetime(2026, 12, 1, 12, tzinfo=UTC)
    database.record_verdicts(
        "2026-12-01T00:00:00Z", "run-1", finished, [Verdict("drift", False, {"data_drift": {}})]
    )
    database.record_verdicts("2026-12-02T00:00:00Z", "run-2", finished, [Verdict("drift", False)])
    windows = database.day_windows(DAY)
    assert [w["partition"] for w in windows] == ["2026-12-01T00:00:00Z", "2026-12-01T23:59:00Z"]
    assert windows[0]["small"] is True
    assert database.day_verdicts(DAY) == {"2026-12-01T00:00:00Z": {"drift": False}}
    summary = summarise_day(DAY, windows, database.day_verdicts(DAY))
    assert summary.prediction_shares["B"] == 1.0 and summary.accuracy == 1.0
    assert summary.failing_windows["drift"] == 1 and summary.small_windows == 2


def test_a_days_row_is_upserted_by_day(database: MetricsDatabase) -> None:
    first = summarise_day(DAY, [{**metrics_row(10), "partition": "2026-12-01T10:00:00Z"}])
    database.record_day(first.to_row())
    assert database.rolled_up_days([DAY, date(2026, 12, 2)]) == {DAY}
    again = summarise_day(
        DAY,
        [
            {**metrics_row(10), "partition": "2026-12-01T10:00:00Z"},
            {**metrics_row(30, drift_share=0.6), "partition": "2026-12-01T10:05:00Z"},
        ],
    )
    database.record_day(again.to_row())
    database.record_day(summarise_day(date(2026, 12, 2), []).to_row())
    rows = database.daily_metrics()
    assert [r["day"] for r in rows] == [DAY, date(2026, 12, 2)]
    assert (rows[0]["windows"], rows[0]["rows"], rows[0]["drift_share_max"]) == (2, 40, 0.6)
    assert rows[0]["failing_windows"]["drift"] == 0
    assert rows[1]["windows"] == 0 and rows[1]["drift_share_mean"] is None
    assert database.daily_metrics([DAY])[0]["day"] == DAY
