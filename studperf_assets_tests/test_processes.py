"""Start-up cost and clean stops: what every run, step and sensor process pays on loading
the code location, and the supervisor that `studperf up` / `studperf ui` stop through."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from studperf_assets.serving.supervisor import StackFailure, Supervisor, processes_of

HEAVY = ("sklearn", "evidently", "mlflow", "skl2onnx", "skops", "onnxruntime", "scipy")


def test_loading_the_code_location_imports_no_heavy_library() -> None:
    code = (
        "import sys, studperf_assets.definitions as d; d.defs.resolve_asset_graph();"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


# A child that starts a grandchild in its own session (out of the child's process group),
# as a careless daemonising tool would; both just sleep.
ESCAPING_CHILD = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
time.sleep(300)
"""


def test_stop_leaves_no_process_even_one_that_left_its_group(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "logs", echo=lambda _line: None)
    supervisor.start("escaper", [sys.executable, "-c", ESCAPING_CHILD], dict(os.environ))
    deadline = time.monotonic() + 30
    while len(processes_of(supervisor.stack_id)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(processes_of(supervisor.stack_id)) == 3
    started = time.monotonic()
    assert supervisor.stop(timeout=3) == []
    assert time.monotonic() - started < 15
    assert processes_of(supervisor.stack_id) == []


def test_a_dead_child_is_restarted_and_one_that_keeps_dying_stops_the_stack(
    tmp_path: Path,
) -> None:
    backoffs: list[float] = []
    supervisor = Supervisor(tmp_path / "logs", echo=lambda _line: None, sleep=backoffs.append)
    child = supervisor.start(
        "flaky", [sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ)
    )
    assert child.process is not None
    child.process.wait(timeout=30)
    first = child.process.pid
    supervisor.check()
    assert child.process.pid != first  # restarted
    try:
        for _ in range(10):
            child.process.wait(timeout=30)
            supervisor.check()
        raise AssertionError("a child that keeps dying must stop the stack")
    except StackFailure as failure:
        assert "flaky keeps exiting (3)" in str(failure)
        assert backoffs == sorted(backoffs) and backoffs[-1] <= 10  # growing, bounded
    finally:
        supervisor.stop(timeout=3)


def test_stack_env_gives_another_shell_the_stack_and_this_studperf(tmp_path: Path) -> None:
    """What `source stack.env` does in bash, with a home whose path needs quoting."""
    from studperf_assets.stack import Stack, StackPorts, sourced_environment

    home = tmp_path / "a home with 'quotes' and $dollars"
    home.mkdir()
    stack = Stack(home, StackPorts(aws=4999, ui=3999, evidently=8999), echo=lambda _line: None)
    shell = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    env = sourced_environment(stack.write_env_file(), shell)
    assert env["STUDPERF_HOME"] == str(home)
    assert env["DAGSTER_HOME"] == str(home / "dagster")
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4999"
    assert env["STUDPERF_DAGSTER_URL"] == "http://127.0.0.1:3999"
    assert env["PATH"] == f"{Path(sys.executable).parent}:/usr/bin:/bin"
    found = subprocess.run(
        ["bash", "-c", "command -v studperf"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found == str(Path(sys.executable).parent / "studperf")
