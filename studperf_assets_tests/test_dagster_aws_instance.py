"""`dagster.aws.yaml` as a real Dagster instance, with what ECS would give it: PostgreSQL
storage (the local server), compute logs in S3 and the run task definition in ECS (both on
moto over HTTP). Launching a run needs the ECS task metadata endpoint, which exists only
inside a task; everything before that is exercised here."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from dagster import DagsterInstance, asset, materialize
from dagster_aws.ecs import EcsRunLauncher

REPO = Path(__file__).resolve().parent.parent
PREFIX = "dagster/compute-logs"


@asset
def greeting() -> str:
    print("hello from a run on the aws instance")  # the captured stdout under test
    return "hello"


@pytest.mark.integration
def test_the_aws_instance_stores_runs_in_postgres_and_logs_in_s3(
    tmp_path: Path,
    s3_bucket: str,
    pg_databases: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    family = f"studperf-test-dagster-run-{uuid.uuid4().hex[:8]}"
    boto3.client("ecs").register_task_definition(
        family=family,
        containerDefinitions=[{"name": "run", "image": "studperf:test", "essential": True}],
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
    )
    home = tmp_path / "aws"
    home.mkdir()
    shutil.copy(REPO / "dagster.aws.yaml", home / "dagster.yaml")
    database = pg_databases().replace("postgresql://", "postgresql+psycopg2://", 1)
    for name, value in {
        "STUDPERF_DAGSTER_PG_URL": database,
        "DAGSTER_RUN_TASK_DEFINITION": family,
        "STUDPERF_COMPUTE_LOGS_BUCKET": s3_bucket,
        "STUDPERF_COMPUTE_LOGS_PREFIX": PREFIX,
    }.items():
        monkeypatch.setenv(name, value)

    instance = DagsterInstance.from_config(str(home))
    try:
        launcher = instance.run_launcher
        assert isinstance(launcher, EcsRunLauncher)
        assert launcher.container_name == "run"
        assert launcher.task_definition is not None
        assert launcher.task_definition.endswith(f":task-definition/{family}:1")

        result = materialize([greeting], instance=instance)
        assert result.success
        # the run is in PostgreSQL: a second instance on the same database sees it
        again = DagsterInstance.from_config(str(home))
        assert again.get_run_by_id(result.run_id) is not None
        again.dispose()
    finally:
        instance.dispose()
    keys = [
        o["Key"]
        for o in boto3.client("s3")
        .list_objects_v2(Bucket=s3_bucket, Prefix=PREFIX)
        .get("Contents", [])
    ]
    assert keys, "no compute log reached S3"
    logs = b"".join(
        boto3.client("s3").get_object(Bucket=s3_bucket, Key=k)["Body"].read() for k in keys
    )
    assert b"hello from a run on the aws instance" in logs
