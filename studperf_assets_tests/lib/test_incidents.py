"""Incident keys: the same failure met on another window is the same incident."""

from __future__ import annotations

import pytest

from studperf_assets.lib.incidents import error_signature, run_failure_key


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("batch batch-000012 failed", "batch batch-000013 failed"),
        # field fault: errors quoting data values gave one incident per window
        ("unknown student 'stu-ab12cd'", "unknown student 'ef34gh'"),
        ('KeyError: "request r-17 missing"', 'KeyError: "other text"'),
        ("run 3f9c0a1b-77e2 failed at deadbeefcafe", "run 0e1d2c3b-aa10 failed at 0123456789ab"),
        ("student stu-ab12cd is unknown", "student stu-ef34gh is unknown"),
        ("value `x1` refused", "value `zz` refused"),
    ],
)
def test_errors_differing_only_in_data_values_are_one_incident(one: str, other: str) -> None:
    assert run_failure_key("monitoring_job", "drift_report", one) == run_failure_key(
        "monitoring_job", "drift_report", other
    )


def test_different_errors_stay_different_and_the_signature_stays_readable() -> None:
    keys = {
        run_failure_key("monitoring_job", "drift_report", message)
        for message in ("KeyError: 'A'", "ValueError: bad input", "database unreachable")
    }
    assert len(keys) == 3
    assert error_signature("KeyError: 'stu-ab12' in batch-000012") == "KeyError: '…' in batch-#"


def test_a_checks_incident_is_as_severe_as_its_worst_check_in_any_window() -> None:
    from studperf_assets.lib.incidents import check_incident_details

    warn = {"data_drift": {"drift_share": 0.4, "severity": "WARN"}}
    error = {"prediction_drift": {"prediction_drift": 0.3, "severity": "ERROR"}}
    windows = [("2026-12-01T10:01:00Z", "r1", error), ("2026-12-01T10:02:00Z", "r2", warn)]
    assert check_incident_details("drift", windows)["severity"] == "ERROR"
    assert check_incident_details("drift", windows[1:])["severity"] == "WARN"
    # a verdict recorded before severities were kept: the check's definition decides
    old = [("2026-12-01T10:01:00Z", "r1", {"performance": {"f1_macro": 0.3}})]
    assert check_incident_details("performance", old)["severity"] == "ERROR"
