"""What ``studperf up`` prints after ``ready``: the loop's events, one line each, taken from
the parts' logs (each part keeps its full log in ``$STUDPERF_HOME/logs``).

The events are structured records (``lib.loop_events``): this reader takes their fields and
says them the same way whatever the emitters' wording; the one exception is Dagster's own
``RUN_FAILURE`` line.

A window monitored, an alert sent, a retraining requested, a bundle promoted, the consumer
swapping to it, its summary of each minute with traffic, and any run that failed: what an
operator watching the terminal wants to see without opening the UI.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from studperf_assets.lib.loop_events import (
    ALERT_NOT_SENT,
    CONSUMER_MINUTE,
    CONSUMER_SWAPPED,
    INCIDENT,
    MONITORED,
    NOT_MONITORED,
    PROMOTED,
    RETRAINING,
    LoopEvent,
    parse,
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOGS = ("dagster.log", "stream.log")
# Dagster's own line for a failed run (its wording, not ours: the one event not a record)
RUN_FAILURE = re.compile(r" - (\w+_job - [0-9a-f-]+) - \d+ - RUN_FAILURE\b")


def _monitored(f: Mapping[str, Any]) -> str:
    drifted = ", ".join(f["drifted_features"]) or "none"
    f1 = "n/a (no labels yet)" if f["f1_macro"] is None else f"{f['f1_macro']:.3f}"
    return (
        f"monitored: {f['window']}: drift share {f['drift_share']:.2f} ({drifted}), "
        f"prediction drift {f['prediction_drift']:.3f}, f1-macro {f1}"
    )


def _not_monitored(f: Mapping[str, Any]) -> str:
    window = f"{f['window']}: " if f["window"] else ""
    return f"not monitored: {window}{f['job']} failed at {f['step']}: {f['error']}"


def _consumer_minute(f: Mapping[str, Any]) -> str | None:
    """The minute's traffic, and what left it without a prediction: the batches whose
    handler raised (function errors) and the records written to the on-failure file."""
    lost = []
    if f["function_errors"]:
        lost.append(f"{f['function_errors']} function errors")
    if f["on_failure_records"]:
        lost.append(f"{f['on_failure_records']} records to the on-failure file")
    if not f["batches"] and not lost:
        return None  # a quiet minute says nothing
    return (
        f"consumer: last {f['seconds']}s: {f['batches']} batches, {f['records']} records, "
        f"{f['predicted']} predicted, {f['errors']} errors, {f['to_retry']} to retry; "
        + "".join(f"{part}; " for part in lost)
        + f"model {', '.join(f['models']) or '-'}"
    )


# What the terminal says for each event, from its fields (None: nothing to say).
SAY: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    MONITORED: _monitored,
    NOT_MONITORED: _not_monitored,
    ALERT_NOT_SENT: lambda f: (
        f"alert not sent: {f['owed']} e-mail{'s' if f['owed'] != 1 else ''} owed, "
        f"the oldest for {f['oldest_seconds']} s: {f['error']}"
    ),
    INCIDENT: lambda f: f"alert sent: incident {f['notice']}: {f['title']}",
    RETRAINING: lambda f: (
        f"retraining: {f['check']} failed on {f['window']}; {f['new_labels']} new labelled rows"
    ),
    PROMOTED: lambda f: f"promoted: production -> {f['version']}",
    CONSUMER_SWAPPED: lambda f: f"consumer swapped: {f['from_version']} -> {f['to_version']}",
    CONSUMER_MINUTE: _consumer_minute,
}


def say(event: LoopEvent) -> str | None:
    """The terminal line of an event. A record this reader does not know, or whose fields
    do not fit, is still said, as its name and fields, never dropped."""
    try:
        return SAY[event.name](event.fields)
    except Exception:  # noqa: BLE001 - any misfit (a huge number included) is still said
        return f"{event.name}: {json.dumps(dict(event.fields), default=str)}"


class ReadableEvents(logging.Filter):
    """On a logger that writes to a person (the demo's sensor ticks, whose Dagster console
    lines would show a record as raw JSON): an event record's message becomes its line as
    ``studperf up`` prints it; an event with nothing to say (a quiet minute) is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        event = parse(record.getMessage())
        if event is None:
            return True
        line = say(event)
        if line is None:
            return False
        record.msg, record.args = line, ()
        return True


def event_of(log: str, line: str) -> str | None:
    """The event a log line reports, as the stack prints it, or None."""
    text = ANSI.sub("", line).rstrip()
    if (event := parse(text)) is not None:
        return say(event)
    if log == "dagster.log" and (failed := RUN_FAILURE.search(text)):
        return f"run FAILED: {failed.group(1)}"
    return None


class EventFollower(threading.Thread):
    """Follows the parts' logs from where they end now, echoing each event once.

    Each log is followed through an open handle: when the log is rotated
    (``local.rotating_log``: renamed to ``<log>.1``, a new ``<log>`` started), the handle
    still reads the renamed file, to its end, before the new file is followed from its
    start; a log truncated in place is read again from its start."""

    def __init__(self, log_dir: Path, echo: Callable[[str], None], every: float = 1.0) -> None:
        super().__init__(name="stack-events", daemon=True)
        self.echo = echo
        self.every = every
        self.stopped = threading.Event()
        self.files = {name: log_dir / name for name in LOGS}
        self.handles: dict[str, BinaryIO] = {}
        self.pending: dict[str, bytes] = {name: b"" for name in LOGS}  # a line half written
        for name, path in self.files.items():
            self._open(name, path, at_end=True)

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - the follower must outlive one bad line
                self.echo(f"{time.strftime('%H:%M:%S')} (a log line could not be read: {exc})")
        for handle in self.handles.values():
            handle.close()

    def poll(self) -> None:
        for name, path in self.files.items():
            for line in self._new_lines(name, path):
                if (event := event_of(name, line)) is not None:
                    self.echo(f"{time.strftime('%H:%M:%S')} {event}")

    def _open(self, name: str, path: Path, at_end: bool = False) -> None:
        try:
            handle = path.open("rb")
        except OSError:
            return  # not there yet: followed from its start once it is
        if at_end:
            handle.seek(0, os.SEEK_END)
        self.handles[name] = handle
        self.pending[name] = b""

    def _new_lines(self, name: str, path: Path) -> list[str]:
        handle = self.handles.get(name)
        if handle is None:
            self._open(name, path)
            handle = self.handles.get(name)
            if handle is None:
                return []
        replaced = _identity(path) not in (None, _identity_of(handle))  # rotated
        if not replaced and _size(path) < handle.tell():  # truncated in place: start over
            handle.seek(0)
            self.pending[name] = b""
        data = self.pending[name] + handle.read()  # the rest of the file the handle holds
        if replaced:
            handle.close()
            self._open(name, path)
            if name in self.handles and self.handles[name] is not handle:
                data += b"" if data.endswith(b"\n") or not data else b"\n"
                data += self.handles[name].read()
            else:
                del self.handles[name]
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits
        self.pending[name] = data[len(complete) :]
        return complete.decode("utf-8", errors="replace").splitlines()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _identity_of(handle: BinaryIO) -> tuple[int, int]:
    stat = os.fstat(handle.fileno())
    return stat.st_dev, stat.st_ino


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
