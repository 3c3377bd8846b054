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


FIRST_OPEN = """
import sys, time
from pathlib import Path
from studperf_assets.cli.main import prepare_dagster_home
home = prepare_dagster_home(Path(sys.argv[1]))
from dagster import DagsterInstance
while time.time() < float(sys.argv[2]):  # all start together
    time.sleep(0.001)
with DagsterInstance.get() as instance:
    instance.get_runs(limit=1)
"""


def test_studperf_commands_at_once_on_a_fresh_home_create_one_instance(tmp_path: Path) -> None:
    """Field fault: two `studperf train` at once on a fresh home crashed in
    DagsterInstance.get() with `sqlite3.IntegrityError: UNIQUE constraint failed:
    alembic_version.version_num` (both created Dagster's storage). The first creation of
    the local instance is serialised under a file lock beside it."""
    import subprocess
    import sys
    import time

    for attempt in range(2):
        home = tmp_path / f"dagster-{attempt}"
        start = time.time() + 8  # after every process has imported dagster
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", FIRST_OPEN, str(home), str(start)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(4)
        ]
        outputs = [p.communicate(timeout=120)[0] for p in processes]
        failed = [o for p, o in zip(processes, outputs, strict=True) if p.returncode]
        assert not failed, failed[0][-2000:]


def test_the_package_seeds_the_instance_the_checkout_describes(tmp_path: Path) -> None:
    """`pip install studperf` has no checkout: the commands seed DAGSTER_HOME from the
    package's templates, and the embedded one is the repository's dagster.yaml."""
    import yaml

    from studperf_assets.local.instance import INSTANCE_TEMPLATES, seed_instance

    repo = Path(__file__).resolve().parents[2]
    packaged = INSTANCE_TEMPLATES / "dagster.yaml"
    assert packaged.read_bytes() == (repo / "dagster.yaml").read_bytes()

    postgres = yaml.safe_load(seed_instance(tmp_path / "pg", "postgres").read_text())
    assert postgres["storage"]["postgres"]["postgres_url"] == {"env": "STUDPERF_DAGSTER_PG_URL"}

    edited = tmp_path / "sqlite" / "dagster.yaml"
    edited.parent.mkdir()
    edited.write_text("telemetry:\n  enabled: true\n")
    seed_instance(edited.parent)  # an operator's own instance file is kept
    assert edited.read_text() == "telemetry:\n  enabled: true\n"
