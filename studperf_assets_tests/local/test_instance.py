"""The local Dagster instance: what the templates turn on, and its creation under races."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance

from studperf_assets.jobs import monitoring_job, training_job
from studperf_assets.local.instance import INSTANCE_TEMPLATES, TEMPLATE_BY_STORAGE, seed_instance


@pytest.mark.parametrize("storage", sorted(TEMPLATE_BY_STORAGE))
def test_every_instance_template_fails_hung_runs(storage: str) -> None:
    """Field fault: a hung monitoring run was never detected, and two of them (the instance's
    2 concurrent runs) stopped all monitoring with no alert. Run monitoring now fails a run
    that does not start, cancels one that overruns and marks canceled one that will not
    stop: each ends as a finished run the alert sensor reports."""
    config = yaml.safe_load((INSTANCE_TEMPLATES / TEMPLATE_BY_STORAGE[storage]).read_text())
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert 60 <= monitoring["start_timeout_seconds"] <= 600
    assert 30 <= monitoring["cancel_timeout_seconds"] <= 600
    assert monitoring["poll_interval_seconds"] <= 60
    ceiling = monitoring["max_runtime_seconds"]
    for job, at_most in ((monitoring_job, 900), (training_job, 3600)):
        limit = int((job.tags or {})["dagster/max_runtime"])
        assert 120 <= limit <= min(at_most, ceiling), job.name


def test_the_embedded_instance_runs_the_monitoring_daemon(tmp_path: Path) -> None:
    seed_instance(tmp_path)
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_runtime_seconds > 0
        assert instance.run_monitoring_cancel_timeout_seconds > 0
