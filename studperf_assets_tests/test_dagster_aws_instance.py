"""`dagster.aws.yaml` as a real Dagster instance, with what ECS would give it: PostgreSQL
storage (the local server), compute logs in S3 and the run task definition in ECS (both on
moto over HTTP), and, for the launch, the ECS task metadata endpoint a Fargate task has
(a small local HTTP server standing in for it)."""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from dagster import DagsterInstance, Definitions, asset, define_asset_job, materialize
from dagster._core.test_utils import create_run_for_test, in_process_test_workspace
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster_aws.ecs import EcsRunLauncher

REPO = Path(__file__).resolve().parent.parent
PREFIX = "dagster/compute-logs"
# Terraform's task definitions are awsvpc; moto 5.2 cannot start an awsvpc task (its ENI has
# no private_dns_name), so these use bridge: what the launcher copies from the daemon's
# network (subnets, security groups) is the one part not exercised.
NETWORK_MODE = "bridge"


@asset
def greeting() -> str:
    print("hello from a run on the aws instance")  # the captured stdout under test
    return "hello"


defs = Definitions(assets=[greeting], jobs=[define_asset_job("greeting_job", [greeting])])


@pytest.fixture
def aws_home(
    tmp_path: Path,
    s3_bucket: str,
    pg_databases: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """A DAGSTER_HOME holding dagster.aws.yaml, and the environment ECS would set."""
    family = f"studperf-test-dagster-run-{uuid.uuid4().hex[:8]}"
    run_definition = boto3.client("ecs").register_task_definition(
        family=family,
        containerDefinitions=[  # moto needs a container memory
            {"name": "run", "image": "studperf:test", "essential": True, "memory": 512}
        ],
        networkMode=NETWORK_MODE,
        cpu="256",
        memory="512",
    )["taskDefinition"]
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
    return {"home": home, "family": family, "run_definition": run_definition}


@pytest.mark.integration
def test_the_aws_instance_stores_runs_in_postgres_and_logs_in_s3(
    aws_home: dict[str, Any], s3_bucket: str
) -> None:
    home, family = aws_home["home"], aws_home["family"]
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


@pytest.fixture
def daemon_task(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A running daemon task in an ECS cluster (moto), and its task metadata endpoint."""
    ecs = boto3.client("ecs")
    cluster = ecs.create_cluster(clusterName=f"studperf-test-{uuid.uuid4().hex[:6]}")
    ecs.register_task_definition(
        family="studperf-test-dagster-daemon",
        containerDefinitions=[
            {"name": "daemon", "image": "studperf:test", "essential": True, "memory": 512}
        ],
        networkMode=NETWORK_MODE,
        cpu="256",
        memory="512",
    )
    cluster_arn = cluster["cluster"]["clusterArn"]
    (task,) = ecs.run_task(
        cluster=cluster_arn, taskDefinition="studperf-test-dagster-daemon", launchType="FARGATE"
    )["tasks"]
    metadata = {
        "/task": {"Cluster": cluster_arn, "TaskARN": task["taskArn"]},
        "": {"Name": "daemon"},
    }

    class Metadata(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(metadata[self.path.rstrip("/")]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ECS_CONTAINER_METADATA_URI_V4", f"http://127.0.0.1:{server.server_port}")
    try:
        yield {"cluster": cluster_arn, "task": task}
    finally:
        server.shutdown()


@pytest.mark.integration
def test_the_launcher_starts_the_run_as_a_run_task_in_the_daemons_network(
    aws_home: dict[str, Any], daemon_task: dict[str, Any]
) -> None:
    instance = DagsterInstance.from_config(str(aws_home["home"]))
    origin = LoadableTargetOrigin(python_file=__file__, attribute="defs")
    ecs = boto3.client("ecs")
    try:
        with in_process_test_workspace(instance, origin) as workspace:
            (location,) = workspace.code_locations
            (repository,) = location.get_repositories().values()
            job = repository.get_full_job("greeting_job")
            run = create_run_for_test(
                instance,
                job_name="greeting_job",
                remote_job_origin=job.get_remote_origin(),
                job_code_origin=job.get_python_origin(),
            )
            instance.launch_run(run.run_id, workspace)
        launched = instance.get_run_by_id(run.run_id)
    finally:
        instance.dispose()
    assert launched is not None
    arns = ecs.list_tasks(cluster=daemon_task["cluster"])["taskArns"]
    tasks = ecs.describe_tasks(cluster=daemon_task["cluster"], tasks=arns)["tasks"]
    (run_task,) = [t for t in tasks if t["taskArn"] != daemon_task["task"]["taskArn"]]
    assert run_task["taskDefinitionArn"] == aws_home["run_definition"]["taskDefinitionArn"]
    (override,) = run_task["overrides"]["containerOverrides"]
    assert override["name"] == "run"
    assert override["command"][:3] == ["dagster", "api", "execute_run"]
    assert launched.tags["ecs/task_arn"] == run_task["taskArn"]
