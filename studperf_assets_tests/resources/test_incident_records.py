"""Failed checks as incidents, in the monitoring database: each window's verdict per group of
checks, the incident a failing window belongs to, in window order, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from studperf_assets.lib.incidents import CHECKS_FAILED, Verdict
from studperf_assets.resources.metrics_db import MetricsDatabase

pytestmark = pytest.mark.integration
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
DRIFT = {"data_drift": {"drift_share": 0.5, "feature_scores": {"Absences": 0.9}}}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path: Path, pg_databases: Callable[[], str]
) -> MetricsDatabase:
    if request.param == "sqlite":
        return MetricsDatabase(url=f"sqlite:///{tmp_path / 'monitoring.db'}")
    url = pg_databases().replace("postgresql://", "postgresql+psycopg2://")
    return MetricsDatabase(url=url)


def failed(group: str = "drift") -> Verdict:
    return Verdict(group, False, DRIFT)


def passed(group: str = "drift") -> Verdict:
    return Verdict(group, True)


def test_the_newest_run_of_a_window_decides_and_a_window_keeps_its_incident(
    database: MetricsDatabase,
) -> None:
    database.record_verdicts("w-002", "run-b", T0 + timedelta(minutes=2), [failed()])
    database.record_verdicts("w-001", "run-a", T0, [failed(), passed("labels")])
    database.record_verdicts("w-002", "run-old", T0, [passed()])  # older, read late: ignored
    unassigned = database.unassigned_failures("drift")
    assert sorted((p, r) for p, r, _ in unassigned) == [("w-001", "run-a"), ("w-002", "run-b")]
    assert unassigned[0][2] == DRIFT
    assert database.unassigned_failures("labels") == []

    incident = database.open_incident("checks:drift", CHECKS_FAILED, "drift", "w-001", T0)
    assert database.open_incident("checks:drift", CHECKS_FAILED, "again", "w-002", T0) == incident
    database.assign_windows(incident.id, "drift", ["w-001", "w-002"])
    assert database.unassigned_failures("drift") == []
    # a re-run of a window (late labels) fails again: still that incident's, not news
    database.record_verdicts("w-001", "run-c", T0 + timedelta(minutes=5), [failed()])
    assert database.unassigned_failures("drift") == []
    assert sorted(p for p, _, _ in database.incident_windows(incident.id)) == ["w-001", "w-002"]
    # a re-run that passes leaves the incident's failing windows
    database.record_verdicts("w-002", "run-d", T0 + timedelta(minutes=6), [passed()])
    assert [p for p, _, _ in database.incident_windows(incident.id)] == ["w-001"]


def test_windows_after_the_latest_failure_in_window_order(database: MetricsDatabase) -> None:
    # bytewise order ("C" collation on PostgreSQL, whatever the database's default)
    keys = ["2026-12-01T10:05", "2026-12-01T10:00", "2026-12-01T10:15", "2026-12-01T10:10"]
    for minute, key in enumerate(keys):
        verdict = failed() if key == "2026-12-01T10:05" else passed()
        database.record_verdicts(key, f"run-{minute}", T0 + timedelta(minutes=minute), [verdict])
    database.record_verdicts("2026-12-01T10:03", "run-x", T0, [failed("performance")])
    assert database.latest_failure("drift") == "2026-12-01T10:05"
    assert database.latest_failure("labels") is None
    assert database.verdicts_after("drift", "2026-12-01T10:05", 5) == [
        ("2026-12-01T10:10", True),
        ("2026-12-01T10:15", True),
    ]
    assert database.verdicts_after("drift", "2026-12-01T10:00", 1) == [("2026-12-01T10:05", False)]


def test_an_incident_spans_its_windows_and_a_resolved_key_opens_anew(
    database: MetricsDatabase,
) -> None:
    first = database.open_incident("checks:drift", CHECKS_FAILED, "drift", "w-003", T0)
    assert first.occurrences == 0 and first.status == "open"
    grown = database.update_incident(first.id, "w-001", "w-004", 3, {"checks": ["data_drift"]}, T0)
    again = database.update_incident(first.id, "w-001", "w-004", 3, {"checks": ["data_drift"]})
    assert (grown.first_partition, grown.last_partition, grown.occurrences) == ("w-001", "w-004", 3)
    assert again == grown  # setting it twice is setting it once
    database.resolve_incident(first.id, T0 + timedelta(hours=1), {"resolved_through": "w-007"})
    database.resolve_incident(first.id, T0 + timedelta(hours=2), {"resolved_through": "w-099"})
    (resolved,) = database.incidents(status="resolved")
    assert resolved.resolved_at == T0 + timedelta(hours=1)
    assert resolved.details == {"checks": ["data_drift"], "resolved_through": "w-007"}
    second = database.open_incident("checks:drift", CHECKS_FAILED, "drift", "w-009", T0)
    assert second.id != first.id
