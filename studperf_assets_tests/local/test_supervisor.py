"""Clean stops: the supervisor that `studperf up` / `studperf ui` stop through, and one
stack per home."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from studperf_assets.local.home_lock import HomeInUse, own_home
from studperf_assets.local.supervisor import (
    DIE_WITH_PARENT,
    HOME_VARIABLE,
    StackFailure,
    Supervisor,
    processes_of,
    processes_with,
)

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
    assert supervisor.stop(timeout=3) == []
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


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)
    return value


def sweep(variable: str, value: str) -> None:
    for pid in processes_with(variable, value):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# A supervisor that owns a home (as `studperf up` does) and supervises the escaping child
# above; it prints its stack ID, then waits to be killed. argv: home, the child's code.
OWNER = """
import os, sys, time
from pathlib import Path
from studperf_assets.local.home_lock import own_home
from studperf_assets.local.supervisor import Supervisor
home = Path(sys.argv[1])
ownership = own_home(home, "studperf up")  # held while this process lives
supervisor = Supervisor(home / "logs", echo=lambda _line: None, home=home)
supervisor.start("escaper", [sys.executable, "-c", sys.argv[2]], dict(os.environ))
print(supervisor.stack_id, flush=True)
time.sleep(300)
"""


def start_owner(home: Path) -> tuple[subprocess.Popen[str], str]:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(home), ESCAPING_CHILD], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    stack_id = owner.stdout.readline().strip()
    assert stack_id, "the owner did not start"
    wait_for("the child and its two children", lambda: len(processes_of(stack_id)) == 3)
    return owner, stack_id


def test_children_die_with_a_supervisor_killed_by_sigkill(tmp_path: Path) -> None:
    """After `kill -9` of `studperf up` its children kept running (8 of them, in the field):
    a supervisor's children now get SIGTERM from the kernel when it dies."""
    owner, stack_id = start_owner(tmp_path / "home")
    children = [p for p in processes_of(stack_id) if _parent(p) == owner.pid]
    try:
        assert len(children) == 1
        owner.kill()
        owner.wait(timeout=30)
        wait_for("the child to die with its supervisor", lambda: not _alive(children[0]))
    finally:
        sweep("STUDPERF_STACK_ID", stack_id)


def test_a_child_whose_supervisor_died_before_it_asked_for_the_signal_does_not_start(
    tmp_path: Path,
) -> None:
    """The parent-death signal is asked for after fork: a supervisor that died in between
    would never send it, so the child checks its parent is still the one that started it."""
    ran = tmp_path / "ran"
    result = subprocess.run(
        [
            sys.executable, "-I", "-S", "-c", DIE_WITH_PARENT, str(os.getpid() + 10**6),
            sys.executable, "-c", f"open({str(ran)!r}, 'w')",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (
        result.returncode != 0 and "its supervisor" in result.stderr and "is gone" in result.stderr
    )
    assert not ran.exists()
    started = subprocess.run(  # the same wrapper, its real parent named: the child runs
        [sys.executable, "-I", "-S", "-c", DIE_WITH_PARENT, str(os.getpid()),
         sys.executable, "-c", f"open({str(ran)!r}, 'w')"],
        timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode == 0 and ran.exists()


def test_a_home_has_one_owner_and_the_next_stops_what_a_dead_one_left(tmp_path: Path) -> None:
    """A second owner is refused while the first lives, with its PID and how to stop it (no
    other ports, no second stack); once the first is killed, the next start stops the
    processes it left (here the grandchildren, beyond its parent-death signal) and owns it."""
    home = tmp_path / "home"
    owner, stack_id = start_owner(home)
    try:
        with pytest.raises(HomeInUse) as refused:
            own_home(home, "studperf ui")
        message = str(refused.value)
        assert f"PID {owner.pid} (studperf up, since " in message and f"kill {owner.pid}" in message
        assert "port" not in message.lower()
        owner.kill()
        owner.wait(timeout=30)
        wait_for("the child's death", lambda: len(processes_of(stack_id)) == 2)
        marked = processes_with(HOME_VARIABLE, str(home.resolve()))
        assert sorted(marked) == sorted(processes_of(stack_id))  # its children, marked
        said: list[str] = []
        ownership = own_home(home, "studperf up", echo=said.append)
        assert processes_with(HOME_VARIABLE, str(home.resolve())) == []
        assert (
            len(said) == 1 and f"owned by PID {owner.pid}" in said[0] and "the 2 it left" in said[0]
        )
        ownership.release()
    finally:
        owner.kill()
        sweep("STUDPERF_STACK_ID", stack_id)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _started(pid: int) -> str:
    """A process's start time (field 22 of its stat): with the PID, who it is."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _up(home: Path, ports: dict[str, int]) -> tuple[subprocess.Popen[str], list[str]]:
    """`studperf up` on ``home``; what it prints is read on as it comes (the pipe never fills)."""
    import threading

    env = {
        **os.environ,
        "STUDPERF_HOME": str(home),
        "STUDPERF_SENSORS": "stopped",  # nothing here is about the sensors
        **{f"STUDPERF_{name}_PORT": str(port) for name, port in ports.items()},
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "studperf_assets.cli", "up"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        lines.extend(line.rstrip() for line in process.stdout)

    threading.Thread(target=read, daemon=True).start()
    return process, lines


def _ready(process: subprocess.Popen[str], lines: list[str]) -> bool:
    if process.poll() is not None:
        pytest.fail(f"studperf up exited with {process.returncode}:\n" + "\n".join(lines))
    return any(line.startswith("ready ") for line in lines)


@pytest.mark.integration
def test_a_killed_stack_is_restarted_on_its_home_and_a_second_one_is_refused(
    tmp_path: Path,
) -> None:
    """The field fault, whole: after `kill -9` of `studperf up` its children kept running and
    held the ports; the restart was refused for busy ports, and its advice (other ports)
    started a second stack on the same home. Now a second `up` is refused while the first
    lives, and after `kill -9` the next start on the same ports stops what is left and runs."""
    from studperf_assets.local.moto import free_port

    home = tmp_path / "home"
    ports = {name: free_port() for name in ("AWS", "UI", "EVIDENTLY")}
    first, lines = _up(home, ports)
    restarted: subprocess.Popen[str] | None = None
    try:
        wait_for("the first stack's ready", lambda: _ready(first, lines), timeout=300)
        marked = processes_with(HOME_VARIABLE, str(home.resolve()))
        first_stack = {(pid, _started(pid)) for pid in marked}
        assert len(first_stack) >= 5  # moto, dagster dev and its children, stream, evidently

        second, said = _up(home, {name: free_port() for name in ports})
        assert second.wait(timeout=120) == 2
        wait_for("its one line", lambda: said)
        assert f"in use by PID {first.pid} (studperf up, since " in said[0], said
        assert "PORT" not in said[0]  # no advice to start a second stack on other ports

        first.kill()  # kill -9: no chance to stop anything
        first.wait(timeout=30)
        restarted, lines = _up(home, ports)  # the same home, the same ports
        wait_for("the restarted stack's ready", lambda: _ready(restarted, lines), timeout=300)
        left = {(pid, _started(pid)) for pid in marked} & first_stack
        assert not left, f"processes of the killed stack still running: {left}"
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=60) == 0
        assert processes_with(HOME_VARIABLE, str(home.resolve())) == []
    finally:
        for process in (first, restarted):
            if process is not None and process.poll() is None:
                process.kill()
        sweep(HOME_VARIABLE, str(home.resolve()))


# A part that starts a helper in its group and one out of it (as `dagster dev` starts its
# webserver, daemon and code server), prints their PIDs, and sleeps.
FORKING_PART = """
import subprocess, sys, time
sleep = [sys.executable, "-c", "import time; time.sleep(300)"]
inside = subprocess.Popen(sleep)
outside = subprocess.Popen(sleep, start_new_session=True)
print(inside.pid, outside.pid, flush=True)
time.sleep(300)
"""


def test_a_part_killed_with_sigkill_is_restarted_without_its_orphans(tmp_path: Path) -> None:
    """Field fault: SIGKILL of `dagster dev` left its webserver, daemon and code server
    running (parent 1), and the supervisor started a second `dagster dev` beside them: two
    daemons on one instance and a port clash. Before a part is restarted, its whole process
    group and anything carrying its marker are stopped."""
    supervisor = Supervisor(tmp_path / "logs", echo=lambda _line: None, sleep=lambda _s: None)
    child = supervisor.start("forker", [sys.executable, "-c", FORKING_PART], dict(os.environ))
    try:
        assert child.process is not None
        deadline = time.monotonic() + 30
        while not child.log.read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.1)
        inside, outside = map(int, child.log.read_text().split()[:2])
        first = child.process.pid
        os.kill(first, signal.SIGKILL)
        child.process.wait(timeout=10)
        assert _alive(inside) and _alive(outside)  # orphans, as dagster dev's were
        supervisor.check()
        assert child.process.pid != first  # restarted...
        assert not _alive(inside) and not _alive(outside)  # ...without what it left
    finally:
        assert supervisor.stop(timeout=3) == []
