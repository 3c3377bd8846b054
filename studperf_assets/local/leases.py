"""Leases in a studperf home: which stack owns the home, which consumer reads a shard.

A lease is an exclusive, non-blocking ``flock`` on a file (filelock's native Unix lock),
held for the holder's lifetime. The kernel drops it the moment the holder dies, however it
dies (``kill -9`` included), so a dead holder's lease is free at once: no expiry, no
heartbeat, no stale PID to judge. The holder writes who it is into the file, so that whoever
is refused can name it. Lease files are never deleted: a second holder could otherwise lock a
new file while the first still holds the old one.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger("studperf.stream")


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a lease, as its file says."""

    pid: int
    command: str
    since: str  # ISO 8601, UTC, to the second

    def describe(self) -> str:
        return f"PID {self.pid} ({self.command}, since {self.since})"


class Lease:
    """One lease file. ``acquire`` never waits; the lease is held until ``release`` or exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = FileLock(path, thread_local=False, preserve_lock_file=True)
        self.previous: Holder | None = None  # the last holder, read as this one took over

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(self, command: str) -> bool:
        """True if this process holds the lease now (it may have held it already)."""
        if self.held:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(blocking=False)
        except Timeout:
            return False
        self.previous = self.holder()
        record = {
            "pid": os.getpid(),
            "command": command,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
            "argv": sys.argv,
        }
        with open(self.path, "r+") as file:  # advisory lock: our own second handle may write
            file.write(json.dumps(record))
            file.truncate()
        return True

    def holder(self) -> Holder | None:
        """The holder's record (the last holder's, if nobody holds it); None if unreadable,
        e.g. read in the instant between a new holder's lock and its record."""
        try:
            record = json.loads(self.path.read_text())
            return Holder(int(record["pid"]), str(record["command"]), str(record["since"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def release(self) -> None:
        if self.held:
            self._lock.release(force=True)


class ShardLeases:
    """A consumer's leases on the shards of one stream, one file per shard in ``folder``.

    Lambda's event source mapping has one reader per shard; here each ``studperf stream`` on
    the same home and stream holds the shards it can and stands by for the rest, taking a
    shard over the moment its holder dies. Logs once per shard when it starts standing by
    (naming the holder) and when it takes a shard over."""

    def __init__(self, folder: Path, stream: str, command: str = "studperf stream") -> None:
        self.folder = folder
        self.stream = stream
        self.command = command
        self.leases: dict[str, Lease] = {}
        self.standing_by: set[str] = set()

    def hold(self, shard: str) -> bool:
        """True if this consumer holds ``shard``'s lease (taking it if it is free)."""
        lease = self.leases.get(shard)
        if lease is None:
            lease = self.leases[shard] = Lease(self.folder / f"{self.stream}.{shard}.lease")
        if lease.held:
            return True
        if lease.acquire(self.command):
            if shard in self.standing_by:
                self.standing_by.discard(shard)
                was = lease.previous.describe() if lease.previous else "unknown"
                log.warning(
                    "%s %s: took the lease over (its holder, %s, is gone); "
                    "reading on after its checkpoint",
                    self.stream, shard, was,
                )  # fmt: skip
            return True
        if shard not in self.standing_by:
            self.standing_by.add(shard)
            holder = lease.holder()
            log.warning(
                "%s %s: standing by: its lease is held by %s in this home (%s)",
                self.stream, shard, holder.describe() if holder else "another consumer",
                lease.path,
            )  # fmt: skip
        return False

    def release(self) -> None:
        for lease in self.leases.values():
            lease.release()
