"""Ground truth that arrives after the prediction: a label names the prediction it belongs to.

A label row is the student's raw row (features, GPA, GradeClass) plus the ``request_id`` of
the prediction it labels and the time it is ``available_at``. Labels join predictions by
``request_id``, never by student: one student may be scored many times.

Files are named by arrival time and kept in hourly folders (a writer that follows
``write_labels``)::

    labels/2026-11-27T14/20261127T142501.123456Z-3f9c0a1b.parquet

but readers never trust a writer's clock: every file under ``labels/`` that has not been
ingested or rejected yet is read, whatever its name says (a writer five minutes behind
must not lose its labels). A name only postpones a file while it lies in the near future
(``SCHEDULE_HORIZON``): that is how ``studperf simulate --label-delay`` delivers labels late.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pandas as pd

from lambda_service.schema import REQUEST_ID_PATTERN
from studperf_assets.lib.data import GPA, RAW_COLUMNS, TARGET, DataValidationError, schema_problems

LABELS_PREFIX = "labels/"
REQUEST_ID = "request_id"
AVAILABLE_AT = "available_at"
LABEL_COLUMNS = (REQUEST_ID, *RAW_COLUMNS, AVAILABLE_AT)
# A writer may not name a file further in the past than this (write_labels refuses).
ARRIVAL_SLACK = timedelta(minutes=2)
# A file named at most this far in the future waits until then (delayed labels, as
# `studperf simulate --label-delay` sends them); one named further ahead is a writer whose
# clock is ahead, and is read at once rather than held for as long as its clock says.
SCHEDULE_HORIZON = timedelta(hours=1)
_STAMP = "%Y%m%dT%H%M%S.%fZ"
# A label file is read whole into memory by a monitoring run: 1,000,000 labels take 36 MB.
MAX_LABEL_FILE_BYTES = 128 << 20


class ObjectTooLarge(ValueError):
    """An object over the size its reader accepts; the message names it and both sizes."""


class ObjectChanged(RuntimeError):
    """An object that changed while it was read (a copy still being written): it is read
    again, as a new version, once it has settled."""


class FrameStore(Protocol):
    def list_keys(self, prefix: str, start_after: str = "") -> list[str]: ...
    def get_bytes(self, key: str, max_bytes: int | None = None) -> bytes: ...
    def put_bytes(self, key: str, data: bytes, content_type: str = ...) -> str: ...


class LabelStore(FrameStore, Protocol):
    """A store that tells a file's version (S3's ETag; size and mtime_ns in a folder), so
    that a file rewritten under the same key is read again and an unchanged one never."""

    def list_versions(self, prefix: str) -> dict[str, str]: ...
    def get_versioned(self, key: str, max_bytes: int | None = None) -> tuple[bytes, str]: ...


class LabelFileError(ValueError):
    """A label file that cannot be used; the message names the file and the problem."""

    def __init__(self, key: str, problem: str, version: str | None = None) -> None:
        self.key, self.problem = key, problem
        self.version = version  # of the bytes judged, when they were read
        super().__init__(f"label file {key}: {problem}")


def label_key(available_at: datetime, token: str | None = None) -> str:
    at = available_at.astimezone(UTC)
    name = f"{at.strftime(_STAMP)}-{token or uuid.uuid4().hex[:8]}.parquet"
    return f"{LABELS_PREFIX}{at.strftime('%Y-%m-%dT%H')}/{name}"


def arrival_of(key: str) -> datetime:
    """When a label file arrives, read from its key."""
    stamp = key.rsplit("/", 1)[-1].split("-", 1)[0]
    return datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC)


def watermark_key(at: datetime) -> str:
    """A key that sorts before every label file arriving at or after ``at``."""
    return label_key(at, token="0")[: -len("0.parquet")]


def write_labels(store: FrameStore, rows: pd.DataFrame, available_at: datetime) -> str:
    """Store the labels of ``rows`` (raw columns plus ``request_id``), arriving at
    ``available_at`` (timezone-aware, not in the past: files are named by arrival)."""
    if available_at.tzinfo is None:
        raise ValueError("available_at must be timezone-aware")
    if available_at < datetime.now(UTC) - ARRIVAL_SLACK:
        raise ValueError("available_at is in the past: label files are named by arrival time")
    frame = rows[[REQUEST_ID, *RAW_COLUMNS]].copy()
    frame[REQUEST_ID] = frame[REQUEST_ID].astype(str)
    frame[AVAILABLE_AT] = pd.Timestamp(available_at).tz_convert("UTC")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    key = label_key(available_at)
    store.put_bytes(key, buffer.getvalue())
    return key


def arrived_files(store: LabelStore, now: datetime | None = None) -> dict[str, str]:
    """Every file under ``labels/`` that has arrived by ``now``, key -> version (sorted by
    key): files of any name, not only well-named Parquet files (the others are rejected, by
    name, where they are ingested); only a name in the near future postpones a file
    (``SCHEDULE_HORIZON``). Temporary files (a name starting with ".") and folder markers
    are not files."""
    now = now or datetime.now(UTC)
    due = watermark_key(now + timedelta(microseconds=1))
    horizon = watermark_key(now + SCHEDULE_HORIZON)
    return {
        key: version
        for key, version in sorted(store.list_versions(LABELS_PREFIX).items())
        if not key.endswith("/")
        and not key.rsplit("/", 1)[-1].startswith(".")
        and not (due <= key < horizon and _well_named(key))
    }


def _well_named(key: str) -> bool:
    try:
        arrival_of(key)
    except ValueError:
        return False
    return key.endswith(".parquet")


def read_label_file(
    store: LabelStore, key: str, max_bytes: int = MAX_LABEL_FILE_BYTES
) -> pd.DataFrame:
    """A label file, validated (``read_label_version``)."""
    return read_label_version(store, key, max_bytes)[0]


def read_label_version(
    store: LabelStore, key: str, max_bytes: int = MAX_LABEL_FILE_BYTES
) -> tuple[pd.DataFrame, str]:
    """A label file, validated, and the version of the bytes read: every problem is a
    LabelFileError naming the file (and the version judged, once its bytes were read). One
    over ``max_bytes`` is refused before it is read, so no file can stall a monitoring run;
    one that changes while it is read is an ObjectChanged (read it again later)."""
    if not key.endswith(".parquet"):
        raise LabelFileError(key, "not a .parquet file (label files are Parquet)")
    try:
        raw, version = store.get_versioned(key, max_bytes=max_bytes)
    except ObjectTooLarge as exc:
        raise LabelFileError(key, str(exc).rsplit(": ", 1)[-1]) from exc
    except (PermissionError, IsADirectoryError) as exc:  # the file's fault, not the store's
        raise LabelFileError(key, f"cannot be read ({type(exc).__name__})") from exc
    try:
        frame = pd.read_parquet(io.BytesIO(raw))
    except Exception as exc:
        raise LabelFileError(
            key, f"not a readable Parquet file ({type(exc).__name__})", version
        ) from exc
    try:
        return validated_labels(key, frame), version
    except LabelFileError as exc:
        raise LabelFileError(key, exc.problem, version) from exc
    except Exception as exc:  # a value no check foresaw: the file's problem
        raise LabelFileError(key, f"unreadable values ({_first_line(exc)})", version) from exc


def validated_labels(key: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The label columns of ``frame`` with every value checked (types, ranges, times) and
    typed as the database stores them; LabelFileError naming the columns and rows if not."""
    missing = [c for c in LABEL_COLUMNS if c not in frame.columns]
    if missing:
        raise LabelFileError(key, f"missing column(s) {', '.join(missing)}")
    if frame.empty:
        raise LabelFileError(key, "no rows")
    frame = frame[list(LABEL_COLUMNS)].reset_index(drop=True)
    problems = [p for c in RAW_COLUMNS if (p := _not_numbers(c, frame[c]))]
    problems += schema_problems(frame[list(RAW_COLUMNS)])
    problems += request_id_problems(frame[REQUEST_ID])
    times, time_problems = label_times(frame[AVAILABLE_AT])
    problems += time_problems
    if problems:
        raise LabelFileError(key, "; ".join(dict.fromkeys(problems[:5])))
    frame[REQUEST_ID] = frame[REQUEST_ID].astype(str)
    frame[AVAILABLE_AT] = times
    for column in RAW_COLUMNS:
        frame[column] = frame[column].astype("float64" if column == GPA else "int64")
    return frame


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _rows_of(mask: pd.Series) -> str:
    rows = [str(i + 1) for i in mask.to_numpy().nonzero()[0][:5]]
    more = int(mask.sum()) - len(rows)
    return ", ".join(rows) + (f" and {more} more" if more > 0 else "")


def _not_numbers(column: str, values: pd.Series) -> str:
    """A numeric column holding something other than numbers (true/false, lists, bytes):
    ``pd.to_numeric`` would read True as 1, so types are checked first."""
    if pd.api.types.is_bool_dtype(values):
        return f"column {column}: true/false values, not numbers"
    if pd.api.types.is_numeric_dtype(values):
        return ""
    odd = values.map(lambda v: v is not None and not isinstance(v, (int, float, str)))
    odd |= values.map(lambda v: isinstance(v, bool))
    if odd.any():
        return f"column {column}: not a number in row {_rows_of(odd)}"
    return ""


# A label's time must be plausible: a writer's epoch number or a year-1500 date is a bug.
EARLIEST_LABEL = pd.Timestamp("2000-01-01", tz="UTC")
LATEST_LABEL = pd.Timestamp("2100-01-01", tz="UTC")


def label_times(values: pd.Series) -> tuple[pd.Series, list[str]]:
    """``available_at`` as UTC timestamps (a zone-less time is UTC), and what is wrong with
    it: a timestamp column, or ISO 8601 text; not numbers, lists or unparseable text."""
    if pd.api.types.is_datetime64_any_dtype(values):
        times = values.dt.tz_localize("UTC") if values.dt.tz is None else values
        times = times.dt.tz_convert("UTC")
        bad = pd.Series(False, index=values.index)
    elif values.dtype == object:
        text = values.map(lambda v: isinstance(v, str))
        stamp = values.map(lambda v: isinstance(v, (datetime, pd.Timestamp)))
        parsed = pd.to_datetime(
            values.where(text | stamp), utc=True, errors="coerce", format="ISO8601"
        )
        times = parsed
        bad = (text | stamp) & parsed.isna()
        bad |= ~(text | stamp) & values.notna()
    else:
        kind = "numbers" if pd.api.types.is_numeric_dtype(values) else str(values.dtype)
        return pd.Series(pd.NaT, index=values.index), [
            f"column {AVAILABLE_AT}: {kind}, not timestamps (write a timestamp or ISO 8601 text)"
        ]
    problems = []
    blank = values.isna()
    if blank.any():
        problems.append(f"{int(blank.sum())} rows without available_at")
    if bad.any():
        problems.append(f"column {AVAILABLE_AT}: not a timestamp in row {_rows_of(bad)}")
    known = times.notna()
    outside = known & ((times < EARLIEST_LABEL) | (times >= LATEST_LABEL))
    if outside.any():
        problems.append(
            f"column {AVAILABLE_AT}: outside [{EARLIEST_LABEL.date()}, {LATEST_LABEL.date()}) "
            f"in row {_rows_of(outside)}"
        )
    return times, problems


def request_id_problems(ids: pd.Series) -> list[str]:
    """What is wrong with a label file's request IDs: they must be what the Lambda accepts
    and writes (``lambda_service.schema.REQUEST_ID_PATTERN``: at most 128 characters), or
    they could never match a prediction, and could not be stored."""
    missing = ids.isna()
    if not pd.api.types.is_string_dtype(ids) and not pd.api.types.is_integer_dtype(ids):
        odd = ids.map(lambda v: isinstance(v, bool) or not isinstance(v, (str, int)))
        if (odd & ids.notna()).any():
            return [f"column {REQUEST_ID}: not text in row {_rows_of(odd & ids.notna())}"]
    text = ids[~missing].astype(str)
    bad = text[~text.str.fullmatch(REQUEST_ID_PATTERN.pattern)]
    problems = [f"{int(missing.sum())} rows without a request_id"] if missing.any() else []
    if len(bad):
        first = bad.iloc[0]
        shown = first if len(first) <= 40 else f"{first[:37]}... ({len(first)} characters)"
        problems.append(
            f"{len(bad)} rows with an invalid request_id (row {int(bad.index[0]) + 1}: "
            f"{shown!r}; 1-128 of A-Z a-z 0-9 . _ : @ / -)"
        )
    return problems


@dataclass
class Resolution:
    """New labels sorted against the ones already known, by request_id."""

    new: pd.DataFrame  # first label of a prediction
    duplicates: int = 0  # the same grade again: ignored, counted
    conflicts: list[str] = field(default_factory=list)  # request_ids given different grades


def resolve(incoming: pd.DataFrame, known: dict[str, int]) -> Resolution:
    """Sort ``incoming`` labels against ``known`` (request_id -> GradeClass): nothing is
    silently overwritten; a prediction given two different grades is a conflict."""
    seen = dict(known)
    keep: list[int] = []
    duplicates = 0
    conflicts: list[str] = []
    for position, (request_id, grade) in enumerate(
        zip(incoming[REQUEST_ID], incoming[TARGET], strict=True)
    ):
        if request_id not in seen:
            seen[request_id] = int(grade)
            keep.append(position)
        elif seen[request_id] == int(grade):
            duplicates += 1
        else:
            conflicts.append(str(request_id))
    return Resolution(incoming.iloc[keep].reset_index(drop=True), duplicates, conflicts)


def as_training_rows(labels: pd.DataFrame) -> pd.DataFrame:
    """Labelled production rows in the raw-data schema, one per student (the latest label
    wins: a student scored twice would otherwise sit on both sides of the split), oldest
    label first (the row cap keeps the newest: ``row_cap``)."""
    if labels.empty:
        return pd.DataFrame(columns=list(RAW_COLUMNS))
    ordered = labels.sort_values(AVAILABLE_AT, kind="stable")
    latest = ordered.drop_duplicates("StudentID", keep="last")
    problems = schema_problems(latest[list(RAW_COLUMNS)])
    if problems:
        raise DataValidationError("labelled production rows: " + "; ".join(problems[:5]))
    return latest[list(RAW_COLUMNS)].reset_index(drop=True)


def without_superseded(file_rows: pd.DataFrame, production: pd.DataFrame) -> pd.DataFrame:
    """The file's rows without those of students a production label covers.

    A StudentID names one student wherever the row comes from, and the training data holds
    each student once (``raw_unique_student_ids``: a student on both sides of the split
    would leak). A production label is the newer observation of that student, so it wins,
    as the latest label wins among production labels (``as_training_rows``); giving it an ID
    of its own would keep the same student twice. The caller counts what was dropped."""
    if production.empty:
        return file_rows
    return file_rows[~file_rows["StudentID"].isin(production["StudentID"])]


def request_ids(frames: Iterable[pd.DataFrame]) -> set[str]:
    return {str(r) for frame in frames for r in frame[REQUEST_ID]}
