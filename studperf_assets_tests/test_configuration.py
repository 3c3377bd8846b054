"""One way to configure: a deployment switch, every setting a parameter, secrets read at run
time and never shown by the UI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studperf_assets.deployment import Deployment, DeploymentError, FromEnv
from studperf_assets.resources import resources_for
from studperf_assets.resources.model_store import LocalModelStore, S3ModelStore
from studperf_assets.resources.object_store import S3ObjectStore

PASSWORD = "s3cr3t-Pa55"
SECRET_ENV = {
    "STUDPERF_METRICS_DB_URL": f"postgresql+psycopg2://studperf:{PASSWORD}@db:5432/monitoring",
    "MLFLOW_TRACKING_URI": f"postgresql+psycopg2://studperf:{PASSWORD}@db:5432/mlflow",
}

# What the code server hands the webserver (and its GraphQL the UI): the repository snapshot,
# with every resource's configured values; and what a run sees once it resolves them.
SNAPSHOT = """
import json
from dagster import build_resources
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value
import studperf_assets.definitions as definitions
defs = definitions.defs()  # what the code server does on load
resources = defs.resources
snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
with build_resources({k: resources[k] for k in ("metrics_database", "mlflow")}) as run:
    urls = {"database": run.metrics_database.url, "mlflow": run.mlflow.tracking_uri}
print(json.dumps({"snapshot": snapshot, "resolved": urls}))
"""


def test_no_password_reaches_the_ui_and_runs_still_get_it() -> None:
    env = {**local_environment(), **SECRET_ENV}
    result = subprocess.run(
        [sys.executable, "-c", SNAPSHOT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert '\\"env\\": \\"STUDPERF_METRICS_DB_URL\\"' in out["snapshot"]  # a reference...
    assert PASSWORD not in out["snapshot"]  # ...never the value
    assert out["resolved"] == {  # read when a run starts
        "database": SECRET_ENV["STUDPERF_METRICS_DB_URL"],
        "mlflow": SECRET_ENV["MLFLOW_TRACKING_URI"],
    }


def test_the_environment_maps_to_parameters() -> None:
    deployment = Deployment.from_environment(
        {
            "STUDPERF_HOME": "/srv/studperf",
            "STUDPERF_DEPLOYMENT": "aws",
            "STUDPERF_MODEL_STORE": "s3://bucket/models",
            "STUDPERF_MONITORING_STORE": "s3://bucket/monitoring",
            "STUDPERF_ALERT_RECIPIENTS": "a@x.org, b@x.org",
            "STUDPERF_SENSORS": "stopped",
            **SECRET_ENV,
        }
    )
    assert deployment.kind == "aws" and deployment.home == Path("/srv/studperf")
    assert deployment.alert_recipients == ("a@x.org", "b@x.org")
    assert not deployment.sensors_running
    assert deployment.metrics_db_url == FromEnv("STUDPERF_METRICS_DB_URL")
    assert isinstance(deployment.mlflow_tracking_uri, FromEnv)
    resources = resources_for(deployment)
    assert isinstance(resources["model_store"], S3ModelStore)
    io_store = resources["io_manager"].store
    assert isinstance(io_store, S3ObjectStore) and io_store.prefix == "dagster-io"


def test_alert_links_have_base_urls_and_aws_has_no_evidently_ui() -> None:
    """The e-mails' links open from a laptop: each UI's base URL is a setting the alert
    sender carries; AWS serves no Evidently UI, so it gets no Evidently link unless named."""
    local = resources_for(Deployment.from_environment({}))["alert_sender"]
    assert (local.dagster_url, local.evidently_url, local.mlflow_url) == (
        "http://127.0.0.1:3000",
        "http://127.0.0.1:8085",
        "http://127.0.0.1:5005",  # the MLflow UI `studperf up` serves, as docs/training.md says
    )
    aws = {"STUDPERF_DEPLOYMENT": "aws", "STUDPERF_MLFLOW_URL": "https://mlflow.example.org"}
    deployment = Deployment.from_environment(aws)
    assert (deployment.evidently_url, deployment.mlflow_url) == ("", "https://mlflow.example.org")
    named = Deployment.from_environment({**aws, "STUDPERF_EVIDENTLY_URL": "https://ev.example.org"})
    assert named.evidently_url == "https://ev.example.org"


def test_the_switch_refuses_settings_that_do_not_fit(tmp_path: Path) -> None:
    with pytest.raises(DeploymentError, match="one of"):
        Deployment(kind="gcp")
    with pytest.raises(DeploymentError, match="STUDPERF_MODEL_STORE, STUDPERF_MONITORING"):
        resources_for(Deployment(kind="aws", home=tmp_path))
    with pytest.raises(DeploymentError, match="use the aws deployment"):
        resources_for(Deployment(home=tmp_path, model_store="s3://bucket/models"))
    with pytest.raises(DeploymentError, match="running or stopped"):
        Deployment.from_environment({"STUDPERF_SENSORS": "paused"})


def test_a_setting_the_resources_do_not_have_is_refused_by_name(tmp_path: Path) -> None:
    """Review of issue 21: ``max_rows`` (retired for ``drift_sample_rows``) was silently
    ignored, so a window compared other rows than its operator asked for."""
    retired = Deployment.from_environment(
        {"STUDPERF_HOME": str(tmp_path), "STUDPERF_MONITORING": '{"max_rows": 50000}'}
    )
    with pytest.raises(DeploymentError, match=r"unknown monitoring setting\(s\) max_rows; known: "):
        resources_for(retired)
    with pytest.raises(DeploymentError, match=r"unknown training setting\(s\) row_cap"):
        resources_for(Deployment(home=tmp_path, training={"row_cap": 5}))
    sampled = resources_for(Deployment(home=tmp_path, monitoring={"drift_sample_rows": 500}))
    assert sampled["monitoring_settings"].drift_sample_rows == 500


def test_a_ui_base_url_that_is_not_a_web_address_is_refused_by_name() -> None:
    """Review of issue 24: an e-mail keeps only http(s) links, so a base URL without its
    scheme (``127.0.0.1:3000``) silently removed every link built on it from every e-mail."""
    for variable in ("STUDPERF_DAGSTER_URL", "STUDPERF_EVIDENTLY_URL", "STUDPERF_MLFLOW_URL"):
        with pytest.raises(DeploymentError, match=f"{variable} must be an http"):
            Deployment.from_environment({variable: "127.0.0.1:3000"})
        with pytest.raises(DeploymentError, match=f"{variable} must be an http"):
            Deployment.from_environment({variable: "file:///srv/reports"})
        empty = Deployment.from_environment({variable: ""})  # empty: no links to that UI
        assert "" in (empty.dagster_url, empty.evidently_url, empty.mlflow_url)
        assert Deployment.from_environment({variable: "HTTPS://ui.example.org"})


def test_local_defaults_live_under_home(tmp_path: Path) -> None:
    resources = resources_for(Deployment(home=tmp_path))
    assert resources["model_store"] == LocalModelStore(root=str(tmp_path / "model_store"))
    assert resources["metrics_database"].url == f"sqlite:///{tmp_path / 'monitoring.db'}"
    assert resources["io_manager"].store.root == str(tmp_path)


def test_an_empty_environment_is_the_fields_defaults(tmp_path: Path) -> None:
    """Each unset variable reads as its field's default: the defaults live once, in the
    fields, which docs/configuration.md's table is rendered from."""
    from studperf_assets.local.stack import StackPorts

    read = Deployment.from_environment({"STUDPERF_HOME": str(tmp_path)})
    assert read == Deployment(home=tmp_path)
    assert StackPorts.from_environment({}) == StackPorts()
    assert StackPorts.from_environment({"STUDPERF_UI_PORT": "3999"}) == StackPorts(ui=3999)


def local_environment() -> dict[str, str]:
    """This process's environment without studperf's own settings (the local defaults)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("STUDPERF_", "MLFLOW_"))}


HOSTILE = {
    "STUDPERF_DEPLOYMENT": "aws",  # half set: no stores, no database
    "STUDPERF_SENSORS": "sideways",
    "STUDPERF_SENSOR_INTERVAL": "often",
    "STUDPERF_HOME": "/nonexistent/studperf",
    "STUDPERF_MODEL_STORE": "s3://nobody-owns-this/models",
    "MLFLOW_TRACKING_URI": "postgresql://nobody@127.0.0.1:9/none",
    "DAGSTER_HOME": "/nonexistent/dagster",
}


def test_importing_the_code_location_reads_no_environment() -> None:
    """The module imports under any environment; ``defs()`` (what Dagster calls on load) is
    where a bad setting is met, with its name."""
    script = (
        "import studperf_assets.definitions as d, studperf_assets.local.demo, "
        "studperf_assets.local.training_run\n"
        "try:\n    d.defs()\nexcept Exception as error:\n    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**local_environment(), **HOSTILE},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "STUDPERF_SENSORS must be running or stopped, not 'sideways'" in result.stdout


def test_the_in_process_tests_need_no_clean_environment() -> None:
    """The conftest's clearing switched off, under a hostile environment: the tests that run
    the code location in process (sensor decisions, checks, the training graph's shape)
    still pass, since they pass their deployment as parameters."""
    tests = Path(__file__).resolve().parent
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(tests / "sensors" / "test_sensor_decisions.py"),
            str(tests / "assets" / "test_training_graph.py::test_definitions_load"),
            str(tests / "lib" / "test_alert_email.py"),
        ],
        env={**local_environment(), **HOSTILE, "STUDPERF_TESTS_KEEP_ENVIRONMENT": "1"},
        cwd=tests.parent,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
