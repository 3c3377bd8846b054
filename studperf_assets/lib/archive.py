"""The predictions archive: every prediction and error record, by time, in the monitoring store.

Kinesis Data Firehose writes it in AWS (``terraform/modules/archive``); locally the stand-in
``studperf_assets.local.firehose`` writes the same layout. Monitoring reads a time window of
it here, never the stream, so a monitor that lags does not lose records to stream retention.

Layout (Firehose's own, with the prefix ``archive/<kind>/!{timestamp:yyyy/MM/dd/HH}/``)::

    archive/predictions/2026/05/01/13/<delivery stream>-<version>-2026-05-01-13-04-59-<uuid>.gz
    archive/errors/...

Each object is GZIP-compressed JSON lines, one record (exactly as the Lambda wrote it to the
stream) per line. The time in the key, folder and name alike, is the approximate arrival
time (UTC) of the object's oldest record; an object holds records that arrived up to one
buffer interval after it. So the rows whose own time (``predicted_at``, ``failed_at``) is in
[t0, t1) are in objects named in [t0 - early, t1 + late), ``early`` covering the buffer
interval and ``late`` the time from a row's own time to its arrival in the stream (the
Lambda's retries). ``read_archive`` reads those objects and keeps exactly the rows in
[t0, t1). An object that cannot be read is an ``UnreadableArchiveObject`` naming it: a
window is never read short.

Monitoring windows select objects by KEY time instead (``objects_between``,
``read_window``): a window is the objects whose key time is in [start, end), so every
object, and every record in it, is in exactly one window, and the window sensor counts rows
(``count_rows``) without parsing them. Firehose delivers at least once: ``read_window``
drops a record seen twice (same ``idempotency_key``) and counts it.

Pure: no Dagster. ``FolderArchive`` and ``S3Archive`` are the two places an archive lives;
``ObjectStore.archive()`` (resources) gives the one of a monitoring store.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import tempfile
import uuid
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from studperf_assets.lib.prediction_records import UnreadablePrediction, decode_prediction
from studperf_assets.lib.regular_files import is_regular, open_regular

if TYPE_CHECKING:
    import pandas as pd

ARCHIVE_PREFIX = "archive"
KINDS = ("predictions", "errors")
TIME_FIELDS = {"predictions": "predicted_at", "errors": "failed_at"}  # a row's own time
EXTENSION = ".gz"
DEFAULT_EARLY = timedelta(seconds=120)  # >= the delivery stream's buffer interval (60 s) + late
DEFAULT_LATE = timedelta(seconds=60)  # a row's time to its arrival in the stream, at most
# An object's bytes, stored or decompressed, at most: twice Firehose's largest buffer (128
# MiB), so that one object (a GZIP bomb, a runaway line) cannot take a reader's memory.
MAX_OBJECT_BYTES = 256 * 1024 * 1024
Engine = Literal["duckdb", "pandas"]

# <name>-<version>-yyyy-MM-dd-HH-mm-ss-<random>[.ext]: Firehose's object name
_NAME = re.compile(r"-(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-[0-9A-Za-z-]+(\.[\w.]+)?$")
# namespace of the stand-in's object names (uuid5 of stream, shard, first and last sequence)
_NAMESPACE = uuid.UUID("6f1c1e9e-3c55-4d0c-9f3a-2f1b6f1a0c21")


class UnreadableArchiveObject(ValueError):
    """An archive object that could not be read; ``key`` names it, the message says why."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"archive object {key}: {reason}")
        self.key = key
        self.reason = reason


class ArchiveSource(Protocol):
    """Where an archive lives: keys relative to the monitoring store's root."""

    def list_keys(self, prefix: str, start_after: str = "") -> list[str]: ...

    def get_bytes(self, key: str) -> bytes: ...

    def put_bytes(self, key: str, data: bytes) -> str: ...

    def uri(self, key: str) -> str: ...

    def local_path(self, key: str) -> Path | None:
        """The object's file if the archive is a folder (read in place), else None."""
        ...


@dataclass(frozen=True)
class FolderArchive:
    """The archive in a folder (the local monitoring store)."""

    root: Path

    def local_path(self, key: str) -> Path | None:
        """The object's file if it is a regular file in the folder; else None, and
        ``get_bytes`` then refuses it by name (a FIFO or a symlink out is never opened)."""
        path = self.root / key
        return path if is_regular(self.root, path) else None

    def list_keys(self, prefix: str, start_after: str = "") -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        # not only regular files: a FIFO or a device listed is refused by name when read,
        # never skipped unseen
        keys = (p.relative_to(self.root).as_posix() for p in base.rglob("*") if not p.is_dir())
        return sorted(
            k for k in keys if not k.rsplit("/", 1)[-1].startswith(".") and k > start_after
        )

    def get_bytes(self, key: str) -> bytes:
        path, uri = self.root / key, self.uri(key)
        with open_regular(self.root, path, uri, MAX_OBJECT_BYTES) as handle:
            return handle.read()

    def put_bytes(self, key: str, data: bytes) -> str:
        """Atomic: a reader sees the whole object or none (write, then rename over)."""
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # durable before the stand-in checkpoints past it
        tmp.replace(path)
        return str(path)

    def uri(self, key: str) -> str:
        return str(self.root / key)


@dataclass(frozen=True)
class S3Archive:
    """The archive in S3 (the monitoring store's bucket and prefix), through a boto3 client
    (which honours ``AWS_ENDPOINT_URL``: moto locally, AWS without it)."""

    client: Any
    bucket: str
    prefix: str = ""

    def _key(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/{key}".lstrip("/")

    def local_path(self, key: str) -> Path | None:
        return None

    def list_keys(self, prefix: str, start_after: str = "") -> list[str]:
        base = len(self._key(""))
        options = {"StartAfter": self._key(start_after)} if start_after else {}
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix), **options
        ):
            keys += [o["Key"][base:] for o in page.get("Contents", [])]
        return sorted(keys)

    def get_bytes(self, key: str) -> bytes:
        response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        size = int(response.get("ContentLength") or 0)
        if size > MAX_OBJECT_BYTES:
            response["Body"].close()
            raise ValueError(f"{size:,} bytes, over the {MAX_OBJECT_BYTES:,}-byte limit")
        return bytes(response["Body"].read())

    def put_bytes(self, key: str, data: bytes) -> str:
        self.client.put_object(
            Bucket=self.bucket, Key=self._key(key), Body=data, ContentType="application/gzip"
        )
        return self.uri(key)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


# ---- writing (the local stand-in for Firehose; tests and benchmarks) ----------------------


def kind_prefix(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"archive kind must be one of {KINDS}, not {kind!r}")
    return f"{ARCHIVE_PREFIX}/{kind}/"


def object_key(
    kind: str, delivery_stream: str, oldest_arrival: datetime, name: str, version: int = 1
) -> str:
    """Firehose's key: prefix, yyyy/MM/dd/HH/ of the oldest record's arrival (UTC), then
    ``<delivery stream>-<version>-yyyy-MM-dd-HH-mm-ss-<name>.gz``."""
    at = oldest_arrival.astimezone(UTC)
    return (
        f"{kind_prefix(kind)}{at:%Y/%m/%d/%H}/"
        f"{delivery_stream}-{version}-{at:%Y-%m-%d-%H-%M-%S}-{name}{EXTENSION}"
    )


def deterministic_name(stream: str, shard: str, first: str, last: str) -> str:
    """A UUID (where Firehose has a random one) fixed by the records the object holds: the
    same records written again overwrite the same object, never add a second."""
    return str(uuid.uuid5(_NAMESPACE, f"{stream}/{shard}/{first}-{last}"))


def encode_records(records: Iterable[bytes]) -> bytes:
    """GZIP JSON lines: each record as written to the stream, one per line (Firehose's
    AppendDelimiterToRecord adds the newline; a record never holds one, it is compact JSON)."""
    return gzip.compress(b"".join(r.rstrip(b"\n") + b"\n" for r in records), compresslevel=6)


# ---- reading ------------------------------------------------------------------------------


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"{t!r}: give window bounds in UTC, with a time zone")
    return t.astimezone(UTC)


def object_time(key: str) -> datetime | None:
    """The time in an object's name (its oldest record's arrival), None if not Firehose's."""
    match = _NAME.search(key.rsplit("/", 1)[-1])
    if match is None:
        return None
    y, mo, d, h, mi, s = (int(g) for g in match.groups()[:6])
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def hour_prefixes(kind: str, start: datetime, end: datetime) -> list[str]:
    """The yyyy/MM/dd/HH/ prefixes of ``kind`` that objects named in [start, end) are in."""
    hour = _utc(start).replace(minute=0, second=0, microsecond=0)
    prefixes = []
    while hour < _utc(end):
        prefixes.append(f"{kind_prefix(kind)}{hour:%Y/%m/%d/%H}/")
        hour += timedelta(hours=1)
    return prefixes


def objects_between(
    source: ArchiveSource,
    kind: str,
    start: datetime,
    end: datetime,
    unplaceable: list[str] | None = None,
) -> list[str]:
    """The keys of ``kind`` whose key time is in [start, end), oldest first. A key under
    those hours whose name has no time cannot be placed in a window: it is added to
    ``unplaceable`` if a list is given (the caller names it), else it is an
    UnreadableArchiveObject; it is never left out silently."""
    start, end = _utc(start), _utc(end)
    keys: list[tuple[datetime, str]] = []
    for prefix in hour_prefixes(kind, start, end):
        for key in source.list_keys(prefix):
            at = object_time(key)
            if at is None:
                if unplaceable is not None:
                    unplaceable.append(source.uri(key))
                    continue
                raise UnreadableArchiveObject(
                    source.uri(key), "its name has no Firehose time (…-yyyy-MM-dd-HH-mm-ss-…)"
                )
            if start <= at < end:
                keys.append((at, key))
    return [key for _, key in sorted(keys)]


def window_objects(
    source: ArchiveSource,
    kind: str,
    t0: datetime,
    t1: datetime,
    early: timedelta = DEFAULT_EARLY,
    late: timedelta = DEFAULT_LATE,
) -> list[str]:
    """The keys of ``kind`` that may hold rows whose own time is in [t0, t1): named in
    [t0 - early, t1 + late)."""
    return objects_between(source, kind, _utc(t0) - early, _utc(t1) + late)


def count_rows(source: ArchiveSource, key: str) -> int:
    """Records in one object: its lines, none parsed."""
    return len(_lines(source.uri(key), _get(source, key)))


@dataclass
class WindowRows:
    """A monitoring window read by key time: its predictions (flat rows as
    ``flatten_prediction`` gives them, a record delivered twice kept once), the records
    that are not predictions (``object``, ``line``, ``reason``: named, not used), the error
    records counted, and the objects read."""

    predictions: pd.DataFrame
    errors: int = 0
    unreadable: list[dict[str, str]] = field(default_factory=list)
    duplicates: int = 0  # records dropped: an idempotency key seen before
    objects: list[str] = field(default_factory=list)


def read_window(
    source: ArchiveSource, start: datetime, end: datetime, threads: int = 8
) -> WindowRows:
    """Every prediction record in the objects whose key time is in [start, end), and the
    number of error records in those of the errors. Each record is checked as monitoring
    needs it (``prediction_records.decode_prediction``): one that is not a prediction is
    named and left out; an object that cannot be read at all (corrupt GZIP) raises
    UnreadableArchiveObject naming it, so a window is never read short."""
    import pandas as pd

    unplaceable: list[str] = []
    keys = objects_between(source, "predictions", start, end, unplaceable)
    rows: list[dict[str, Any]] = []
    unreadable: list[dict[str, str]] = [
        {"object": uri, "line": "-", "reason": "its name has no Firehose time: in no window"}
        for uri in unplaceable
    ]
    for key, data in zip(keys, _fetch(source, keys, threads), strict=True):
        uri = source.uri(key)
        for number, line in _numbered_lines(uri, data):
            try:
                rows.append(flatten_prediction(decode_prediction(line)))
            except UnreadablePrediction as problem:
                unreadable.append({"object": uri, "line": str(number), "reason": str(problem)})
    error_unplaceable: list[str] = []
    error_keys = objects_between(source, "errors", start, end, error_unplaceable)
    unreadable += [
        {"object": uri, "line": "-", "reason": "its name has no Firehose time: in no window"}
        for uri in error_unplaceable
    ]
    errors = sum(
        len(_lines(source.uri(k), data))
        for k, data in zip(error_keys, _fetch(source, error_keys, threads), strict=True)
    )
    frame = pd.DataFrame(rows).drop(columns=["grade", "model_name"], errors="ignore")
    unique = frame.drop_duplicates("idempotency_key").reset_index(drop=True) if rows else frame
    return WindowRows(unique, errors, unreadable, len(frame) - len(unique), keys + error_keys)


@dataclass
class ArchiveRows:
    """The rows of a window: predictions (flat: features, ``prediction``, ``prob_<label>``,
    ids, ``predicted_at``) and errors (the error record's fields, ``failed_at``), both with
    their time as a UTC timestamp and sorted by it; ``objects`` the keys read."""

    predictions: pd.DataFrame
    errors: pd.DataFrame
    objects: dict[str, list[str]] = field(default_factory=dict)


def read_archive(
    source: ArchiveSource,
    t0: datetime,
    t1: datetime,
    *,
    kinds: Sequence[str] = KINDS,
    engine: Engine = "duckdb",
    early: timedelta = DEFAULT_EARLY,
    late: timedelta = DEFAULT_LATE,
    threads: int = 8,
) -> ArchiveRows:
    """The archive's rows whose own time is in [t0, t1) (UTC), predictions and errors.

    ``engine`` picks how objects are parsed (DuckDB by default: see
    ``benchmarks/archive_read.py``); both give the same frames. An object that cannot be
    read raises UnreadableArchiveObject naming it (its URI)."""
    t0, t1 = _utc(t0), _utc(t1)
    if t1 <= t0:
        raise ValueError(f"empty window: [{t0.isoformat()}, {t1.isoformat()})")
    frames: dict[str, pd.DataFrame] = {}
    objects: dict[str, list[str]] = {}
    for kind in KINDS:
        keys = window_objects(source, kind, t0, t1, early, late) if kind in kinds else []
        objects[kind] = keys
        read = _read_duckdb if engine == "duckdb" else _read_pandas
        frames[kind] = read(source, keys, kind, t0, t1, threads)
    return ArchiveRows(frames["predictions"], frames["errors"], objects)


def _get(source: ArchiveSource, key: str) -> bytes:
    try:
        return source.get_bytes(key)
    except Exception as exc:
        raise UnreadableArchiveObject(source.uri(key), f"{type(exc).__name__}: {exc}") from exc


def _fetch(source: ArchiveSource, keys: Sequence[str], threads: int) -> list[bytes]:
    """The objects' bytes, fetched in parallel (S3 latency, not bandwidth, bounds a window)."""
    if len(keys) < 2 or threads < 2:
        return [_get(source, k) for k in keys]
    with ThreadPoolExecutor(max_workers=min(threads, len(keys))) as pool:
        return list(pool.map(lambda key: _get(source, key), keys))


def _numbered_lines(uri: str, data: bytes) -> list[tuple[int, bytes]]:
    """An object's non-blank lines with their numbers, or UnreadableArchiveObject (not GZIP,
    or more than MAX_OBJECT_BYTES once decompressed: a small object can hold gigabytes)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            text = stream.read(MAX_OBJECT_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableArchiveObject(uri, f"not readable GZIP ({exc})") from None
    if len(text) > MAX_OBJECT_BYTES:
        raise UnreadableArchiveObject(
            uri, f"over {MAX_OBJECT_BYTES:,} bytes decompressed (Firehose writes at most 128 MiB)"
        )
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _lines(uri: str, data: bytes) -> list[bytes]:
    return [line for _, line in _numbered_lines(uri, data)]


def _decode_object(uri: str, data: bytes) -> list[dict[str, Any]]:
    """An object's records, or UnreadableArchiveObject (corrupt GZIP, a line not a JSON object)."""
    records = []
    for number, line in _numbered_lines(uri, data):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise UnreadableArchiveObject(uri, f"line {number} is not JSON ({exc})") from None
        if not isinstance(record, dict):
            raise UnreadableArchiveObject(uri, f"line {number} is not a JSON object")
        records.append(record)
    return records


def _missing_time(uri: str, kind: str, line: int | None = None) -> UnreadableArchiveObject:
    which = f"record {line}" if line is not None else "a record"
    return UnreadableArchiveObject(uri, f"{which} has no {TIME_FIELDS[kind]!r} to place it")


def flatten_prediction(r: dict[str, Any]) -> dict[str, Any]:
    """A prediction record as a flat row: the window's columns (features, ``prediction``,
    ids, ``prob_<grade>``, version and time), and ``grade``/``model_name``."""
    row = {
        **r["student"],
        "prediction": r["grade_class"],
        "grade": r.get("grade"),
        "student_id": r["student_id"],
        "request_id": str(r.get("request_id") or r["idempotency_key"]),
    }
    row.update({f"prob_{k}": v for k, v in r["probabilities"].items()})
    row.update(
        model_name=r.get("model_name"),
        model_version=r["model_version"],
        idempotency_key=r["idempotency_key"],
        predicted_at=r["predicted_at"],
    )
    return row


def _empty(kind: str) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({TIME_FIELDS[kind]: pd.Series([], dtype="datetime64[ns, UTC]")})


def _finish(frame: pd.DataFrame, kind: str, t0: datetime, t1: datetime) -> pd.DataFrame:
    """Keep [t0, t1), sort by time (then idempotency key), a fresh index."""
    import pandas as pd

    column = TIME_FIELDS[kind]
    frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    frame = frame[(frame[column] >= pd.Timestamp(t0)) & (frame[column] < pd.Timestamp(t1))]
    order = [column, "idempotency_key"] if "idempotency_key" in frame else [column]
    return frame.sort_values(order, kind="stable").reset_index(drop=True)


def _read_pandas(
    source: ArchiveSource, keys: Sequence[str], kind: str, t0: datetime, t1: datetime, threads: int
) -> pd.DataFrame:
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for key, data in zip(keys, _fetch(source, keys, threads), strict=True):
        uri = source.uri(key)
        for number, record in enumerate(_decode_object(uri, data), start=1):
            if record.get(TIME_FIELDS[kind]) is None:
                raise _missing_time(uri, kind, number)
            try:
                rows.append(flatten_prediction(record) if kind == "predictions" else record)
            except (KeyError, TypeError, AttributeError) as exc:
                raise UnreadableArchiveObject(
                    uri, f"record {number} is not a prediction: {exc!r}"
                ) from None
    if not rows:
        return _empty(kind)
    return _finish(pd.DataFrame(rows), kind, t0, t1)


def _read_duckdb(
    source: ArchiveSource, keys: Sequence[str], kind: str, t0: datetime, t1: datetime, threads: int
) -> pd.DataFrame:
    """All the window's objects in one ``read_json`` (GZIP, newline-delimited); objects of an
    S3 archive are fetched by the archive's own client into a scratch folder first (DuckDB's
    httpfs extension is downloaded at run time and knows neither the task's role nor
    ``AWS_ENDPOINT_URL``'s moto). If DuckDB refuses the set, each object is checked alone to
    name the one at fault."""
    if not keys:
        return _empty(kind)
    with tempfile.TemporaryDirectory(prefix="studperf-archive-") as scratch:
        local = [source.local_path(k) for k in keys]
        paths = [p for p in local if p is not None]
        if len(paths) < len(keys):
            paths = []
            for number, data in enumerate(_fetch(source, keys, threads)):
                path = Path(scratch) / f"{number:06d}.json.gz"
                path.write_bytes(data)
                paths.append(path)
        import duckdb

        try:
            frame = _duckdb_frame([str(p) for p in paths], kind)
        except (duckdb.Error, KeyError) as exc:
            for key, path in zip(keys, paths, strict=True):  # name the object at fault
                try:
                    data = path.read_bytes()
                except OSError as gone:
                    raise UnreadableArchiveObject(source.uri(key), str(gone)) from exc
                for number, record in enumerate(_decode_object(source.uri(key), data), start=1):
                    if record.get(TIME_FIELDS[kind]) is None:
                        raise _missing_time(source.uri(key), kind, number) from exc
            raise UnreadableArchiveObject(
                ", ".join(source.uri(k) for k in keys), f"DuckDB could not read them: {exc}"
            ) from exc
    missing = frame[TIME_FIELDS[kind]].isna()
    if missing.any():  # name the object and the line
        key = keys[int(frame["_object"][missing].iloc[0])]
        data = source.get_bytes(key)
        for number, record in enumerate(_decode_object(source.uri(key), data), start=1):
            if record.get(TIME_FIELDS[kind]) is None:
                raise _missing_time(source.uri(key), kind, number)
        raise _missing_time(source.uri(key), kind)
    frame = frame.drop(columns="_object")
    return _finish(frame, kind, t0, t1)


def _duckdb_frame(paths: list[str], kind: str) -> pd.DataFrame:
    import duckdb

    with duckdb.connect(config={"threads": 2}) as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("objects", _paths_frame(paths))
        # sample_size=-1: every row decides the types, so a later row never breaks the read
        source = (
            "read_json($paths, format = 'newline_delimited', compression = 'gzip', "
            "sample_size = -1, maximum_object_size = 16777216, filename = true)"
        )
        described = con.execute(f"DESCRIBE SELECT * FROM {source}", {"paths": paths}).fetchall()
        columns = {row[0]: row[1] for row in described}
        sql = (
            f"SELECT {_select(columns, kind)}, objects.number AS _object FROM {source} AS r "
            "JOIN objects ON r.filename = objects.path"
        )
        return con.execute(sql, {"paths": paths}).df()


def _paths_frame(paths: list[str]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({"path": paths, "number": range(len(paths))})


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _select(columns: dict[str, Any], kind: str) -> str:
    """The SELECT list flattening a prediction as ``flatten_prediction`` does (the struct
    fields come from the records themselves: features follow the bundle); errors as they are."""
    plain = [c for c in columns if c != "filename"]
    if kind != "predictions":
        return ", ".join(_quote(c) for c in plain)
    for needed in ("student", "probabilities", "grade_class", "idempotency_key"):
        if needed not in columns:
            raise KeyError(f"prediction records lack {needed!r}")
    student = _struct_fields(columns["student"])
    probabilities = _struct_fields(columns["probabilities"])
    request = (
        "COALESCE(NULLIF(CAST(request_id AS VARCHAR), ''), idempotency_key)"
        if "request_id" in columns
        else "idempotency_key"
    )
    parts = [f"student.{_quote(f)} AS {_quote(f)}" for f in student]
    parts += ["grade_class AS prediction"]
    parts += ["grade" if "grade" in columns else "NULL AS grade"]
    parts += ["student_id", f"{request} AS request_id"]
    parts += [f"probabilities.{_quote(f)} AS {_quote('prob_' + f)}" for f in probabilities]
    parts += ["model_name" if "model_name" in columns else "NULL AS model_name"]
    parts += ["model_version", "idempotency_key", "predicted_at"]
    return ", ".join(parts)


def _struct_fields(kind: str) -> list[str]:
    """The field names of a DuckDB STRUCT type as DESCRIBE spells it (flat fields)."""
    if not kind.startswith("STRUCT(") or not kind.endswith(")"):
        raise KeyError(f"not a JSON object in every record: {kind}")
    fields = re.findall(r'(?:^|, )("(?:[^"]|"")+"|[^ ,()]+) ', kind[len("STRUCT(") : -1])
    return [f[1:-1].replace('""', '"') if f.startswith('"') else f for f in fields]
