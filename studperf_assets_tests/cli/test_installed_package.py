"""studperf as `pip install studperf` gives it: the wheel in a virtualenv of its own, run
from a folder that is not the checkout. `studperf ui` must find its instance and its code
location in the package (it once read both from the repository root and crashed)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from studperf_assets.local.moto import free_port
from studperf_assets.local.supervisor import processes_with

REPO = Path(__file__).resolve().parents[2]
LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries { name
  locationOrLoadError { __typename
    ... on RepositoryLocation { repositories { jobs { name } sensors { name } } }
    ... on PythonError { message } } } } } }"""


@pytest.fixture(scope="module")
def installed(built_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding the wheel and its pinned dependencies (uv links them from its
    cache: seconds, not minutes). Returns its `bin` folder."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    assert uv, "make setup installs uv beside python"
    venv = tmp_path_factory.mktemp("installed") / "venv"
    _run(uv, "venv", "--quiet", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    _run(uv, "pip", "install", "--quiet", "--python", python, "-c", REPO / "constraints.txt",
         built_wheel)  # fmt: skip
    return python.parent


def _run(*argv: str | Path) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, timeout=600)


def _clean_environment(home: str) -> dict[str, str]:
    """A user's shell: no settings of ours, nothing pointing into the checkout."""
    drop = ("STUDPERF_", "MLFLOW_", "DAGSTER_", "PYTHONPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**env, "STUDPERF_HOME": home}


def _graphql(port: int, query: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


def _loaded_location(port: int, process: subprocess.Popen[str], timeout: float = 240) -> Any:
    """The code location's entry, once the webserver answers and the location has loaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "studperf ui exited"
        try:
            (entry,) = _graphql(port, LOCATIONS)["workspaceOrError"]["locationEntries"]
            if entry["locationOrLoadError"] is not None:
                return entry
        except (OSError, KeyError, TypeError, ValueError):
            pass
        time.sleep(1)
    raise AssertionError(f"no code location loaded on port {port} within {timeout:.0f}s")


@pytest.mark.integration
def test_the_installed_ui_runs_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_environment("home")  # relative, as a user may write it: elsewhere/home
    home = elsewhere / "home"
    where = subprocess.run(
        [installed / "python", "-c", "import studperf_assets; print(studperf_assets.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert where.startswith(str(installed.parent)), where  # the wheel's code, not the checkout's

    port = free_port()
    command = [str(installed / "studperf"), "ui", "--port", str(port)]
    process = subprocess.Popen(command, cwd=elsewhere, env=env, stdout=subprocess.PIPE, text=True)
    try:
        entry = _loaded_location(port, process)
        # dagster dev, its webserver, daemon and code server: told the home as an absolute
        # path (they run in the instance folder, where "home" would mean another folder)
        running = processes_with("STUDPERF_HOME", str(home))
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=30)
    left = processes_with("STUDPERF_HOME", str(home))

    loaded = entry["locationOrLoadError"]
    assert loaded["__typename"] == "RepositoryLocation", loaded
    (repository,) = loaded["repositories"]
    assert {"training_job", "monitoring_job"} <= {job["name"] for job in repository["jobs"]}
    assert "retraining_sensor" in {sensor["name"] for sensor in repository["sensors"]}
    instance = (home / "dagster" / "dagster.yaml").read_text()
    assert instance == (REPO / "dagster.yaml").read_text()  # seeded from the package's copy
    log = (home / "logs" / "dagster.log").read_text()
    assert "Serving dagster-webserver" in log
    for noise in ("Found a dagster instance configuration", "is superseded", "Traceback"):
        assert noise not in log, noise
    assert len(running) >= 4 and returncode == 0 and left == []
