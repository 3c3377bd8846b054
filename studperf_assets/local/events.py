"""What ``studperf up`` prints after ``ready``: the loop's events, one line each, taken from
the parts' logs (each part keeps its full log in ``$STUDPERF_HOME/logs``).

A batch monitored, an alert sent, a retraining requested, a bundle promoted, the consumer
swapping to it, its summary of each minute with traffic, and any run that failed: what an
operator watching the terminal wants to see without opening the UI.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*m")
ALERTS = " - monitoring_alert_sensor - "
# (log file, pattern, label): the first group of the pattern follows the label.
EVENTS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("dagster.log", re.compile(r" - drift_report - (batch-\d+: .*)$"), "monitored"),
    ("dagster.log", re.compile(ALERTS + r"alert sent for (.*)$"), "alert sent"),
    ("dagster.log", re.compile(ALERTS + r"not monitored: (.*)$"), "not monitored"),
    ("dagster.log", re.compile(ALERTS + r"(incident \w+: .*)$"), "alert sent"),
    ("dagster.log", re.compile(ALERTS + r"alert not sent: (.*)$"), "alert not sent"),
    ("dagster.log", re.compile(r" - retraining_sensor - retraining: (.*)$"), "retraining"),
    ("dagster.log", re.compile(r" - production_model - (production -> \S+)"), "promoted"),
    ("dagster.log", re.compile(r" - (\w+_job - [0-9a-f-]+) - \d+ - RUN_FAILURE\b"), "run FAILED"),
    ("stream.log", re.compile(r"\bhot swap (\S+ -> \S+)"), "consumer swapped"),
    ("stream.log", re.compile(r"\b(last \d+s: [1-9]\d* batches, .*?); since start"), "consumer"),
)


def event_of(log: str, line: str) -> str | None:
    """The event a log line reports, as the stack prints it, or None."""
    text = ANSI.sub("", line).rstrip()
    for name, pattern, label in EVENTS:
        if name == log and (found := pattern.search(text)):
            return f"{label}: {found.group(1)}"
    return None


class EventFollower(threading.Thread):
    """Follows the parts' logs from where they end now, echoing each event once."""

    def __init__(self, log_dir: Path, echo: Callable[[str], None], every: float = 1.0) -> None:
        super().__init__(name="stack-events", daemon=True)
        self.echo = echo
        self.every = every
        self.stopped = threading.Event()
        self.files = {name: log_dir / name for name in sorted({log for log, _, _ in EVENTS})}
        self.offsets = {name: _size(path) for name, path in self.files.items()}

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            self.poll()

    def poll(self) -> None:
        for name, path in self.files.items():
            for line in self._new_lines(name, path):
                if (event := event_of(name, line)) is not None:
                    self.echo(f"{time.strftime('%H:%M:%S')} {event}")

    def _new_lines(self, name: str, path: Path) -> list[str]:
        size = _size(path)
        if size < self.offsets[name]:  # replaced or truncated: start over
            self.offsets[name] = 0
        if size == self.offsets[name]:
            return []
        with path.open("rb") as handle:
            handle.seek(self.offsets[name])
            chunk = handle.read(size - self.offsets[name])
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits
        self.offsets[name] += len(complete)
        return complete.decode("utf-8", errors="replace").splitlines()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
