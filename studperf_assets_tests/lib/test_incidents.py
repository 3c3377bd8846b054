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
