"""What `studperf up` derives from its settings, without starting anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from studperf_assets.deployment import Deployment
from studperf_assets.local.stack import Stack, StackPorts, has_production_bundle


def test_the_stack_honours_every_location_setting(tmp_path: Path) -> None:
    """Field fault: `studperf up` ignored STUDPERF_MODEL_STORE: it looked for the production
    bundle in, and pointed the consumer at, $STUDPERF_HOME/model_store. Every location the
    stack uses comes from the deployment's settings (the home is only their default), and
    the Dagster instance folder from DAGSTER_HOME when set."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    environ = {
        "STUDPERF_HOME": str(home),
        "STUDPERF_MODEL_STORE": str(elsewhere / "models"),
        "STUDPERF_MONITORING_STORE": str(elsewhere / "monitoring"),
        "STUDPERF_IO_STORE": str(elsewhere / "io"),
        "STUDPERF_DATA_SOURCE": str(elsewhere / "data.csv"),
        "DAGSTER_HOME": str(elsewhere / "dagster"),
        "STUDPERF_DAGSTER_STORAGE": "sqlite",
    }
    stack = Stack.from_environment(environ, StackPorts())
    (home / "model_store").mkdir(parents=True)
    (home / "model_store" / "production.json").write_text(json.dumps({"version": "v-home"}))
    assert not has_production_bundle(stack)  # the home's store is not this deployment's
    (elsewhere / "models").mkdir(parents=True)
    (elsewhere / "models" / "production.json").write_text(json.dumps({"version": "v1"}))
    assert has_production_bundle(stack)
    assert stack.stream_argv(["studperf"])[-2:] == ["--model", str(elsewhere / "models")]
    env = stack.environment()
    assert env["DAGSTER_HOME"] == str(elsewhere / "dagster")
    for variable in ("STUDPERF_MODEL_STORE", "STUDPERF_MONITORING_STORE", "STUDPERF_IO_STORE"):
        assert env[variable] == environ[variable]  # what the parts (and stack.env) are told
    assert env["STUDPERF_DATA_SOURCE"] == environ["STUDPERF_DATA_SOURCE"]
    assert stack.dagster_home == elsewhere / "dagster"


def test_the_defaults_stay_under_the_home(tmp_path: Path) -> None:
    stack = Stack.from_environment({"STUDPERF_HOME": str(tmp_path)}, StackPorts())
    assert stack.model_store == tmp_path / "model_store"
    assert stack.dagster_home == tmp_path / "dagster"
    assert stack.environment()["DAGSTER_HOME"] == str(tmp_path / "dagster")


def test_a_store_on_s3_is_refused_by_the_local_stack(tmp_path: Path) -> None:
    deployment = Deployment(home=tmp_path, model_store="s3://bucket/models")
    with pytest.raises(ValueError, match="model_store s3://bucket/models is on S3"):
        _ = Stack(home=tmp_path, ports=StackPorts(), deployment=deployment).model_store


def test_stack_env_gives_another_shell_the_stack_and_this_studperf(tmp_path: Path) -> None:
    """What `source stack.env` does in bash, with a home whose path needs quoting."""
    from benchmarks.shell import sourced_environment
    from studperf_assets.local.stack import Stack, StackPorts

    home = tmp_path / "a home with 'quotes' and $dollars"
    home.mkdir()
    ports = StackPorts(aws=4999, ui=3999, evidently=8999, mlflow=5999)
    stack = Stack(home, ports, echo=lambda _line: None)
    shell = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    env = sourced_environment(stack.write_env_file(), shell)
    assert env["STUDPERF_HOME"] == str(home)
    assert env["DAGSTER_HOME"] == str(home / "dagster")
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4999"
    assert env["STUDPERF_DAGSTER_URL"] == "http://127.0.0.1:3999"
    assert env["STUDPERF_EVIDENTLY_URL"] == "http://127.0.0.1:8999"  # the e-mails' links
    assert env["STUDPERF_MLFLOW_URL"] == "http://127.0.0.1:5999"  # the stack's MLflow UI
    assert env["PATH"] == f"{Path(sys.executable).parent}:/usr/bin:/bin"
    found = subprocess.run(
        ["bash", "-c", "command -v studperf"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found == str(Path(sys.executable).parent / "studperf")


def test_the_mlflow_ui_serves_the_tracking_database_on_loopback(tmp_path: Path) -> None:
    stack = Stack.from_environment(
        {"STUDPERF_HOME": str(tmp_path), "STUDPERF_MLFLOW_PORT": "5123"},
        StackPorts.from_environment({"STUDPERF_MLFLOW_PORT": "5123"}),
    )
    argv = stack.mlflow_argv("python")
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "5123"
    assert argv[argv.index("--workers") + 1] == "1"
    assert argv[argv.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert stack.mlflow_url == "http://127.0.0.1:5123"
    assert 5123 in stack.local_ports()


def test_no_mlflow_ui_is_started_for_a_tracking_server(tmp_path: Path) -> None:
    environ = {"STUDPERF_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": "https://u:pw@ml.example/"}
    stack = Stack.from_environment(environ, StackPorts())
    assert not stack.mlflow_server
    assert stack.mlflow_url == "https://ml.example/"  # no credentials on the ready line
    assert StackPorts().mlflow not in stack.local_ports()
    database = {**environ, "MLFLOW_TRACKING_URI": "postgresql://u:pw@db/mlflow"}
    assert Stack.from_environment(database, StackPorts()).mlflow_url == ""


def test_a_tracking_server_keeps_its_port_without_its_credentials(tmp_path: Path) -> None:
    """The listed UI (and the e-mails' MLflow links) must reach the server MLflow tracks to:
    dropping the credentials must not drop the port or an IPv6 host's brackets."""
    for uri, url in (
        ("http://mlflow.internal:5000", "http://mlflow.internal:5000"),
        ("https://u:pw@ml.example:8443/mlflow?x=1", "https://ml.example:8443/mlflow"),
        ("http://[::1]:5000", "http://[::1]:5000"),
    ):
        environ = {"STUDPERF_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": uri}
        assert Stack.from_environment(environ, StackPorts()).mlflow_url == url
