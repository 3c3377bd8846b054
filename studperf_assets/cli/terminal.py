"""One logging setup for the studperf command: a human format on a terminal, JSON lines when
asked (``STUDPERF_LOG_FORMAT=json``), on stderr (stdout keeps results, e.g. a bundle URI).

Structured fields go in ``extra=``; the JSON format writes them as keys, the human format
leaves them to the message.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from studperf_assets.deployment import DeploymentError
from studperf_assets.lib.progress import progress_enabled

FORMATS = ("human", "json")  # STUDPERF_LOG_FORMAT; the first is the default
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LEVEL = "INFO"  # STUDPERF_LOG_LEVEL, unless set
# Attributes every LogRecord has: anything else on a record came in through ``extra=``.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class HumanFormatter(logging.Formatter):
    """Time, level and message; on a terminal a loop event record (``lib.loop_events``) is
    shown as its name and fields. Written to a file (``studperf up``'s part logs) the record
    stays JSON, since that is what ``studperf up`` reads back."""

    def __init__(self, readable_events: bool) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
        self.readable_events = readable_events

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        if self.readable_events:
            from studperf_assets.lib.loop_events import parse

            event = parse(record.message)
            if event is not None:
                fields = ", ".join(f"{k}={v}" for k, v in event.fields.items())
                record.message = f"{event.name}: {fields}"
            else:  # a structured line (``extra=``, e.g. the handler's "batch scored")
                extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
                shown = ", ".join(f"{k}={v}" for k, v in extra.items() if _short(v))
                if shown:
                    record.message = f"{record.message}: {shown}"
        return super().formatMessage(record)


def _short(value: Any) -> bool:
    """A field worth a place on a terminal line: a number, a flag or a short text."""
    return isinstance(value, int | float | bool) or (isinstance(value, str) and len(value) < 80)


def configure(fmt: str | None = None, level: str | None = None) -> str:
    """Configure the root logger once for this command; returns the format chosen.
    ``STUDPERF_LOG_LEVEL=DEBUG`` adds what the commands keep out of sight, such as the
    traceback behind a one-line AWS error."""
    chosen = (fmt or os.environ.get("STUDPERF_LOG_FORMAT") or FORMATS[0]).lower()
    if chosen not in FORMATS:
        raise DeploymentError(f"STUDPERF_LOG_FORMAT must be one of {FORMATS}, not {chosen!r}")
    level = (level or os.environ.get("STUDPERF_LOG_LEVEL") or DEFAULT_LEVEL).upper()
    if level not in LEVELS:
        raise DeploymentError(f"STUDPERF_LOG_LEVEL must be one of {LEVELS}, not {level!r}")
    handler = logging.StreamHandler(sys.stderr)
    if chosen == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(HumanFormatter(readable_events=sys.stderr.isatty()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # studperf's own loggers at ``level``; libraries (alembic, botocore, …) only warn
    root.setLevel(logging.WARNING)
    logging.getLogger("studperf").setLevel(level)
    return chosen


class Progress:
    """Progress of long work: a tqdm bar on a terminal, else a log line every 10 seconds."""

    def __init__(self, total: int, unit: str, log: logging.Logger, every: float = 10.0) -> None:
        self.total, self.unit, self.log, self.every = total, unit, log, every
        self.done, self.logged_at = 0, time.monotonic()
        self.bar: Any = None
        if progress_enabled():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=f" {unit}", file=sys.stderr, leave=False)

    def to(self, done: int) -> None:
        """``done`` of ``total`` are finished."""
        if self.bar is not None:
            self.bar.update(done - self.done)
        elif time.monotonic() - self.logged_at >= self.every:
            self.log.info("%d of %d %s", done, self.total, self.unit)
            self.logged_at = time.monotonic()
        self.done = done

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.bar is not None:
            self.bar.close()
