"""The parts' logs in ``$STUDPERF_HOME/logs``, bounded: each ``<part>.log`` is rotated when it
would pass ``STUDPERF_LOG_MAX_BYTES`` (``<part>.log.1`` … ``.<STUDPERF_LOG_BACKUPS>``, the
oldest dropped), so a part's logs never hold more than (backups + 1) x max bytes.

A part does not write its log itself: its stdout and stderr are a pipe, and a thread of the
supervisor (``pump``) copies what comes out of it into a ``RotatingLog``. A file opened for
append by the child could not be rotated safely: a rename leaves the child writing to the
renamed file, and a copy-then-truncate loses what is written between the two. Here the only
writer of the file is the supervisor, which rotates between two writes, and only after a
whole line: a reader (``events.EventFollower``) that holds the old file open reads it to its
end, then goes on in the new one, and no line is cut in two across files.

A child's descendants inherit the pipe (``dagster dev``'s webserver and daemon, and their
runs): their output goes to the same log, and the pump ends when the last of them closes it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from studperf_assets.deployment import DeploymentError

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5
MIN_MAX_BYTES = 4096  # below this a log would be all rotation
_CHUNK = 65536
PARTIAL_LIMIT = 65536  # a line not ended after this many bytes is written as it is


class LogSettingError(DeploymentError):
    """A log rotation setting that is not a number in range."""


def rotation_from_environment(environ: Mapping[str, str]) -> tuple[int, int]:
    """(max bytes, backups) from ``STUDPERF_LOG_MAX_BYTES`` and ``STUDPERF_LOG_BACKUPS``."""
    values = []
    for name, default, least in (
        ("STUDPERF_LOG_MAX_BYTES", DEFAULT_MAX_BYTES, MIN_MAX_BYTES),
        ("STUDPERF_LOG_BACKUPS", DEFAULT_BACKUPS, 1),
    ):
        text = environ.get(name, "").strip()
        try:
            value = int(text) if text else default
        except ValueError:
            raise LogSettingError(f"{name} must be a whole number, not {text!r}") from None
        if value < least:
            raise LogSettingError(f"{name} must be at least {least}, not {value}")
        values.append(value)
    return values[0], values[1]


class RotatingLog:
    """One part's log file, appended to under a lock and rotated at a line's end."""

    def __init__(
        self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._size = 0
        self._partial = b""  # the start of a line not ended yet
        self._open()  # there from the start, as a file opened for the child was

    def _open(self) -> BinaryIO:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open between writes
            self._size = self._file.tell()
        return self._file

    def write(self, data: bytes) -> None:
        """Append the whole lines of ``data``; a line not yet ended waits for its end (or
        for ``PARTIAL_LIMIT`` bytes, or ``close``). Before whole lines would take the file
        past ``max_bytes`` it is rotated, so a line is never cut across files; a line
        longer than ``max_bytes`` fills a file alone."""
        with self._lock:
            data = self._partial + data
            end = data.rfind(b"\n") + 1
            lines, self._partial = data[:end], data[end:]
            if len(self._partial) > PARTIAL_LIMIT:  # no line end in sight: out it goes
                lines, self._partial = lines + self._partial, b""
            self._write_lines(lines)

    def _write_lines(self, lines: bytes) -> None:
        while lines:
            room = max(0, self.max_bytes - self._size)
            if len(lines) <= room:
                self._append(lines)
                return
            fits = lines.rfind(b"\n", 0, room) + 1  # the whole lines that fit
            if fits:
                self._append(lines[:fits])
                lines = lines[fits:]
                self._rotate()
            elif self._size > 0:  # not one more line fits: a new file first
                self._rotate()
            else:  # one line longer than a whole file: alone in it
                end = lines.find(b"\n") + 1 or len(lines)
                self._append(lines[:end])
                lines = lines[end:]

    def _append(self, data: bytes) -> None:
        handle = self._open()
        handle.write(data)
        handle.flush()
        self._size += len(data)

    def _rotate(self) -> None:
        """``<log>.<n>`` -> ``<log>.<n+1>`` (the oldest dropped), the log -> ``<log>.1``;
        the next write opens a new log."""
        if self._file is not None:
            self._file.close()
            self._file = None
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._open()  # the log is never missing, even for a moment between two writes

    def close(self) -> None:
        """Write a line not ended yet (a part's last words), then close the file."""
        with self._lock:
            partial, self._partial = self._partial, b""
            self._write_lines(partial)
            if self._file is not None:
                self._file.close()
                self._file = None


def pump(fd: int, log: RotatingLog) -> None:
    """Copy a pipe's output into ``log`` until every writer has closed it; closes ``fd``."""
    try:
        while chunk := os.read(fd, _CHUNK):
            log.write(chunk)
    finally:
        os.close(fd)
        log.close()  # its last line, even unended (the next write opens the file again)


def start_pump(fd: int, log: RotatingLog, name: str) -> threading.Thread:
    thread = threading.Thread(target=pump, args=(fd, log), name=f"log-{name}", daemon=True)
    thread.start()
    return thread
