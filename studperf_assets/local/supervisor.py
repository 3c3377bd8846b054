"""Child processes that stop together: what ``studperf up`` and ``studperf ui`` run on.

Each child starts in its own process group, and carries ``STUDPERF_STACK_ID`` in its
environment (its descendants inherit it). Stopping sends SIGTERM to every group, waits,
then SIGKILLs what is left, and finally sweeps ``/proc`` for any process that still
carries the stack's ID: nothing is left behind, whatever the children spawned.

A supervisor that cannot stop them (``kill -9``, a crash) still takes its children along:
on Linux each is started with a parent-death signal (SIGTERM from the kernel when the
supervisor dies). Their own descendants are out of its reach (``dagster dev`` stops its
webserver and daemon on that SIGTERM; a run in flight may outlive it): they carry
``STUDPERF_STACK_HOME``, the home they belong to, so that the next start on that home finds
and stops them (``home_lock``).

A child's output (stdout and stderr) goes through a pipe to a thread of the supervisor that
writes it to ``<log_dir>/<name>.log``, rotated by size (``local.rotating_log``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from studperf_assets.local.rotating_log import (
    DEFAULT_BACKUPS,
    DEFAULT_MAX_BYTES,
    RotatingLog,
    start_pump,
)

STACK_ID_VARIABLE = "STUDPERF_STACK_ID"
HOME_VARIABLE = "STUDPERF_STACK_HOME"  # the resolved home a stack's processes belong to
PART_VARIABLE = "STUDPERF_STACK_PART"  # <stack id>/<part name>: what a part started

# `python -I -S -c DIE_WITH_PARENT <parent pid> <argv...>`: asks the kernel for SIGTERM when
# the parent dies, then becomes the child (exec keeps the request). A parent that died before
# the request was made would never send it: then the child does not start. Not preexec_fn,
# which Python documents as unsafe in a process with threads (studperf up has some).
DIE_WITH_PARENT = """
import ctypes, os, signal, sys
PR_SET_PDEATHSIG = 1
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
if os.getppid() != int(sys.argv[1]):
    sys.exit(f"{sys.argv[2]}: not started, its supervisor (PID {sys.argv[1]}) is gone")
os.execvp(sys.argv[2], sys.argv[2:])
"""


class StackFailure(RuntimeError):
    """A part of the stack could not start, or died and may not be restarted."""


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log: Path
    restart: bool = True  # restarted when it dies on its own (with backoff)
    cwd: Path | None = None  # None: this process's working directory
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)
    pump: threading.Thread | None = None  # copies its output into its log


def processes_of(stack_id: str) -> list[int]:
    """PIDs of live processes carrying the stack's ID (Linux /proc; [] elsewhere)."""
    return processes_with(STACK_ID_VARIABLE, stack_id)


def processes_with(variable: str, value: str) -> list[int]:
    """PIDs of live processes whose environment sets ``variable=value``."""
    marker = f"{variable}={value}".encode()
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if marker in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def die_with_parent(argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped so that the kernel SIGTERMs it when this process (more exactly, the
    thread that starts it) dies; unchanged where there is no ``prctl`` (not Linux)."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    return [sys.executable, "-I", "-S", "-c", DIE_WITH_PARENT, str(os.getpid()), *argv]


class Supervisor:
    """Starts children, restarts the ones that die, and stops them all, within a bound.

    Start and check children from the main thread: a child's parent-death signal fires when
    the thread that started it ends."""

    def __init__(
        self,
        log_dir: Path,
        echo: Callable[[str], None] = print,
        sleep: Callable[[float], None] = time.sleep,
        home: Path | None = None,
        log_max_bytes: int = DEFAULT_MAX_BYTES,
        log_backups: int = DEFAULT_BACKUPS,
    ) -> None:
        self.stack_id = uuid.uuid4().hex
        self.log_dir = log_dir
        self.log_max_bytes = log_max_bytes
        self.log_backups = log_backups
        self.logs: dict[str, RotatingLog] = {}  # one per part, shared by its restarts
        self.echo = echo
        self.sleep = sleep
        self.home = home.resolve() if home else None  # marks the children as that home's
        self.children: list[Child] = []
        self.stopping = False

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        marks = {STACK_ID_VARIABLE: self.stack_id}
        if self.home:
            marks[HOME_VARIABLE] = str(self.home)
        return {**base, **marks}

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        restart: bool = True,
        cwd: Path | None = None,
    ) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        marked = {**self.environment(env), PART_VARIABLE: f"{self.stack_id}/{name}"}
        child = Child(name, list(argv), marked, log, restart, cwd)
        self._spawn(child)
        self.children.append(child)
        return child

    def _spawn(self, child: Child) -> None:
        log = self.logs.get(child.name)
        if log is None:
            log = RotatingLog(child.log, self.log_max_bytes, self.log_backups)
            self.logs[child.name] = log
        read_end, write_end = os.pipe()  # not inherited: only the child's stdout is
        try:
            child.process = subprocess.Popen(
                die_with_parent(child.argv),
                env=dict(child.env),
                cwd=child.cwd,
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as one
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)  # the child (and what it starts) holds it now
        child.pump = start_pump(read_end, log, child.name)

    def _drain(self, child: Child, timeout: float) -> None:
        """Wait (at most ``timeout``) until the child's output is all in its log."""
        if child.pump is not None:
            child.pump.join(timeout)

    def check(self) -> None:
        """Restart children that died on their own; raise if one may not be restarted or
        keeps dying (5 times in 5 minutes)."""
        for child in self.children:
            assert child.process is not None
            code = child.process.poll()
            if code is None or self.stopping:
                continue
            if not child.restart:
                self._drain(child, 2.0)  # its last words are in the log it names
                raise StackFailure(f"{child.name} exited with {code}; see {child.log}")
            now = time.monotonic()
            child.restarts = [t for t in child.restarts if now - t < 300] + [now]
            if len(child.restarts) > 5:
                raise StackFailure(f"{child.name} keeps exiting ({code}); see {child.log}")
            self.echo(f"{child.name} exited with {code}; restarting (log: {child.log})")
            self._clear_remains(child)
            self.sleep(min(10.0, 0.5 * 2 ** len(child.restarts)))
            self._spawn(child)

    def run_to_end(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> int:
        """Run a one-off child (e.g. the first training) to completion, stoppable."""
        child = self.start(name, argv, env, restart=False)
        assert child.process is not None
        while child.process.poll() is None:
            if self.stopping:
                raise StackFailure(f"stopped while {name} was running")
            time.sleep(0.2)
        self._drain(child, 10.0)  # its last lines are in its log before anyone reads it
        self.children.remove(child)
        return child.process.returncode

    def stop(self, timeout: float = 12.0) -> list[int]:
        """Stop every child and its descendants; returns PIDs that survived (none, normally)."""
        self.stopping = True
        for child in reversed(self.children):
            self._signal(child, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = [c for c in self.children if c.process and c.process.poll() is None]
            if not alive and not processes_of(self.stack_id):
                break
            time.sleep(0.2)
        for child in self.children:
            self._signal(child, signal.SIGKILL)
        for pid in processes_of(self.stack_id):  # anything that left its group
            _kill(pid, signal.SIGKILL)
        for child in self.children:
            if child.process:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.process.wait(timeout=2)
            self._drain(child, 2.0)
        for log in self.logs.values():
            log.close()
        time.sleep(0.1)
        return processes_of(self.stack_id)

    def _clear_remains(self, child: Child, timeout: float = 10.0) -> None:
        """What a dead part left: its process group (the part led it) and any process
        carrying its marker, stopped (SIGTERM, then SIGKILL) before it is started again. A
        SIGKILLed ``dagster dev`` leaves its webserver, daemon and code server running; a
        second one beside them would mean two daemons on one instance and a port clash."""
        marker = str(child.env[PART_VARIABLE])

        def remains() -> list[int]:
            return sorted(set(_group_members(child)) | set(processes_with(PART_VARIABLE, marker)))

        left = remains()
        if not left:
            return
        self.echo(f"{child.name}: stopping what it left running ({len(left)} processes)")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            self._signal(child, sig)
            for pid in left:
                _kill(pid, sig)
            deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
            while (left := remains()) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not left:
                return

    @staticmethod
    def _signal(child: Child, sig: signal.Signals) -> None:
        if child.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, sig)


def _group_members(child: Child) -> list[int]:
    """Live processes in the group the child led (its PID is the group's ID)."""
    if child.process is None or not Path("/proc").is_dir():
        return []
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == child.process.pid:
            members.append(int(entry.name))
    return members


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


class StopRequested:
    """SIGINT, SIGTERM and SIGHUP (its terminal closed; unless ignored, as under ``nohup``)
    set a flag the supervisor's loop reads (installed for a block)."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequested:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if sig != signal.SIGHUP or signal.getsignal(sig) is not signal.SIG_IGN:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        if not self.supervisor.stopping:
            self.supervisor.echo(f"{signal.Signals(signum).name}: stopping")
        self.supervisor.stopping = True

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
