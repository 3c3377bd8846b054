"""A minimal reader of the predictions archive by key time, for monitoring windows.

Stand-in until the archive's own reader (``lib.archive``, branch i20-archive) lands: the
two will be reconciled. It knows only Firehose's layout::

    archive/<kind>/yyyy/MM/dd/HH/<delivery stream>-<version>-yyyy-MM-dd-HH-mm-ss-<id>.gz

GZIP JSON lines, one record per line. A window holds the objects whose key time is in
[start, end) (``lib.windows``), so no record's own timestamp is parsed to place it.

Pure: ``source`` is anything with ``list_keys(prefix)``, ``get_bytes(key)`` and
``uri(key)`` (the monitoring store's ``ObjectStore``, a folder or S3).
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from studperf_assets.lib.prediction_records import UNREADABLE, UnreadablePrediction
from studperf_assets.lib.prediction_records import decode_prediction as _decode

ARCHIVE_PREFIX = "archive"
PREDICTIONS, ERRORS = "predictions", "errors"
_NAME = re.compile(r"-(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-[^/]+$")


class Source(Protocol):
    def list_keys(self, prefix: str, start_after: str = "") -> list[str]: ...

    def get_bytes(self, key: str, max_bytes: int | None = None) -> bytes: ...

    def uri(self, key: str) -> str: ...


class UnreadableObject(ValueError):
    """An archive object that cannot be read: a window is never read short."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"archive object {uri}: {reason}")
        self.uri = uri


def object_time(key: str) -> datetime | None:
    """The key time of an archive object (Firehose's delivery time, UTC), None if the name
    is not Firehose's."""
    match = _NAME.search(key.rsplit("/", 1)[-1])
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _hours(start: datetime, end: datetime) -> Iterator[datetime]:
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while hour < end:
        yield hour
        hour += timedelta(hours=1)


def objects_between(source: Source, kind: str, start: datetime, end: datetime) -> list[str]:
    """Keys of ``kind`` whose key time is in [start, end), oldest first. A key without a
    Firehose time under those hours is an UnreadableObject: it could not be placed."""
    keys: list[tuple[datetime, str]] = []
    for hour in _hours(start, end):
        for key in source.list_keys(f"{ARCHIVE_PREFIX}/{kind}/{hour:%Y/%m/%d/%H}/"):
            at = object_time(key)
            if at is None:
                raise UnreadableObject(source.uri(key), "its name holds no Firehose time")
            if start <= at < end:
                keys.append((at, key))
    return [key for _, key in sorted(keys)]


def _lines(source: Source, key: str) -> list[bytes]:
    try:
        text = gzip.decompress(source.get_bytes(key))
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableObject(source.uri(key), f"not readable GZIP ({exc})") from exc
    return [line for line in text.splitlines() if line.strip()]


def count_rows(source: Source, key: str) -> int:
    """Records in one object (its lines; none parsed)."""
    return len(_lines(source, key))


@dataclass
class WindowRecords:
    """A window's prediction records (decoded; one that is not a prediction carries
    ``UNREADABLE`` and its place as ``_shard`` = object, ``_sequence`` = line), the number
    of error records, and the objects read."""

    predictions: list[dict[str, Any]] = field(default_factory=list)
    errors: int = 0
    objects: list[str] = field(default_factory=list)


def read_window(source: Source, start: datetime, end: datetime) -> WindowRecords:
    """Every prediction record of [start, end), and the count of its error records."""
    window = WindowRecords()
    for key in objects_between(source, PREDICTIONS, start, end):
        window.objects.append(key)
        for number, line in enumerate(_lines(source, key), start=1):
            try:
                body = _decode(line)
            except UnreadablePrediction as problem:
                body = {UNREADABLE: str(problem)}
            body["_shard"], body["_sequence"] = key, str(number)
            window.predictions.append(body)
    for key in objects_between(source, ERRORS, start, end):
        window.objects.append(key)
        window.errors += count_rows(source, key)
    return window
