"""One stack per home: ``studperf up`` and ``studperf ui`` own ``$STUDPERF_HOME`` while they run.

Two stacks on one home share one Dagster instance, one consumer checkpoint file and one
model store: their two daemons once toggled one sensor cursor between two streams and cut
400 records into 8 partitions. So a start takes the home's lease (``leases.Lease`` on
``studperf.lock``) or is refused, naming the live owner. The lease of an owner that died
(``kill -9``, a crash) is free at once; processes it left behind still carry the home's
marker (``supervisor.HOME_VARIABLE``) and are stopped before anything starts, so that they
free their ports and stop writing to the home.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from studperf_assets.local.leases import Holder, Lease
from studperf_assets.local.supervisor import HOME_VARIABLE, processes_with

LOCK_FILE = "studperf.lock"


class HomeError(RuntimeError):
    """The home cannot be owned now."""


class HomeInUse(HomeError):
    """The home is owned by a live stack (``studperf up`` or ``studperf ui``)."""

    def __init__(self, home: Path, holder: Holder | None) -> None:
        self.home = home
        self.holder = holder
        who = holder.describe() if holder else "another studperf process"
        how = f"kill {holder.pid}" if holder else f"the process holding {home / LOCK_FILE}"
        super().__init__(
            f"{home} is in use by {who}; one stack per home: stop it first "
            f"(Ctrl-C in its terminal, or {how})"
        )


def own_home(home: Path, command: str, echo: Callable[[str], None] = print) -> Lease:
    """Take ``home`` for ``command``, after stopping what a dead owner left running. Held
    until released, or until this process exits (keep the lease referenced: collected, it
    is released). Raises HomeInUse while a live owner holds it, HomeError if what a dead
    owner left will not stop."""
    home = home.resolve()
    lease = Lease(home / LOCK_FILE)
    if not lease.acquire(command):
        raise HomeInUse(home, _live_holder(lease))
    orphans = processes_with(HOME_VARIABLE, str(home))
    if orphans:
        was = lease.previous.describe() if lease.previous else "its last owner"
        echo(
            f"{command}: {home} was owned by {was}, which died without stopping its processes; "
            f"stopping the {len(orphans)} it left (PIDs {', '.join(map(str, sorted(orphans)))})"
        )
        left = stop_processes(orphans, lambda: processes_with(HOME_VARIABLE, str(home)))
        if left:
            lease.release()
            raise HomeError(f"processes a dead stack of {home} left would not stop: {left}")
    return lease


def stop_processes(
    pids: Iterable[int], still: Callable[[], list[int]], timeout: float = 10.0
) -> list[int]:
    """SIGTERM ``pids``; SIGKILL whatever ``still()`` lists after ``timeout``; returns what
    survived even that (nothing, normally)."""
    for pid in pids:
        _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while still() and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in still():
        _kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while still() and time.monotonic() < deadline:
        time.sleep(0.1)
    return still()


def _live_holder(lease: Lease) -> Holder | None:
    """The holder's record; a new owner may be writing it this instant (the file still names
    the dead one, or nothing): read again briefly."""
    holder = lease.holder()
    for _ in range(20):
        if holder is not None and _alive(holder.pid):
            break
        time.sleep(0.05)
        holder = lease.holder()
    return holder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def port_holders(port: int) -> list[int]:
    """PIDs listening on TCP ``port`` (any address), from ``/proc/net``; [] if unknown
    (not Linux, or another user's process)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(f"socket:[{inode}]")
    holders = []
    for entry in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in entry.iterdir()):
                holders.append(int(entry.parent.name))
    return sorted(holders)


def describe_process(pid: int) -> str:
    """``PID n (its command line)``, naming the home if it is part of a studperf stack."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return f"PID {pid}"
    command = " ".join(" ".join(a.decode(errors="replace") for a in argv).split())
    command = command if len(command) <= 80 else command[:77] + "..."
    mark = f"{HOME_VARIABLE}=".encode()
    homes = [e[len(mark) :].decode(errors="replace") for e in environ if e.startswith(mark)]
    return f"PID {pid} ({command}" + (f"; the studperf stack of {homes[0]})" if homes else ")")
