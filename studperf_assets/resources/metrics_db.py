"""The monitoring database: per-batch metrics, incidents, and the ground-truth index.

SQLite by default, PostgreSQL in production; the schema is migrated by
``monitoring_schema.ensure_schema`` (once, under a lock) before first use. Labels
are ingested here from the label files once, keyed by the ``request_id`` of the prediction
they belong to, so a monitoring run looks up its window's labels instead of reading every
file ever written, and a sensor finds the windows new labels belong to through the hashed
prediction index.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import pandas as pd
import sqlalchemy as sa
from dagster import ConfigurableResource
from pydantic import Field

from studperf_assets.lib.daily_rollup import day_bounds
from studperf_assets.lib.data import RAW_COLUMNS, TARGET
from studperf_assets.lib.labels import AVAILABLE_AT, REQUEST_ID, arrival_of, resolve
from studperf_assets.lib.request_ids import id_hash
from studperf_assets.resources.incident_records import IncidentRecords, _bytewise
from studperf_assets.resources.monitoring_schema import (
    ANY_VERSION,
    BATCH_METRICS,
    CHECK_VERDICTS,
    DAILY_METRICS,
    INDEXED_WINDOWS,
    LABEL_FILES,
    LABEL_JOINS,
    LABELS,
    PREDICTION_IDS,
    current_revision,
    ensure_schema,
    stored_key,
    stored_version,
)

IN_CHUNK = 900  # bound parameters per IN (...) query: SQLite allows 999 by default
T = TypeVar("T")
INSERT_PAGE = 10_000  # rows per executemany of the prediction index


class MonitoringDatabaseError(RuntimeError):
    """The monitoring database cannot be reached; the message names it, password hidden."""


class LabelFileRefused(ValueError):
    """The database refused a label file's values (a bound no validation foresaw): the file
    is rejected with this problem, like any unusable file, and the run goes on."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


@dataclass
class IngestedFile:
    key: str
    rows: int
    new_labels: int
    duplicates: int
    conflicts: list[str]


@functools.cache
def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        # Several run processes and the daemon share the file: wait for locks, use WAL.
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _wal(connection: Any, _record: Any) -> None:
            # Switching to WAL needs the file to itself, and SQLite answers "database is
            # locked" at once, without its busy timeout, while another process migrates a
            # fresh file: a monitoring run failed so (about 1 in 40 races). WAL is kept in
            # the file, so the first connection that finds it free switches it for all.
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                try:
                    connection.execute("PRAGMA journal_mode=WAL")
                except sqlite3.OperationalError as busy:
                    if "locked" not in str(busy):
                        raise

    else:
        engine = sa.create_engine(url, pool_pre_ping=True)
    ensure_schema(engine)  # once per process; migrated once, under a lock, whoever races
    return engine


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite drops the zone


def _arrival(key: str) -> datetime | None:
    try:
        return arrival_of(key)
    except ValueError:
        return None


def _chunks(values: Sequence[T]) -> Iterator[list[T]]:
    for start in range(0, len(values), IN_CHUNK):
        yield list(values[start : start + IN_CHUNK])


class MetricsDatabase(IncidentRecords, ConfigurableResource):
    """Per-batch metrics, the ground-truth index, incidents, each window's check verdicts
    and every partition's monitoring status, in SQL (SQLite by default, PostgreSQL in
    production); the schema is migrated before first use (``monitoring_schema.ensure_schema``)."""

    url: str = Field(description="SQLAlchemy URL, e.g. postgresql+psycopg2://… or sqlite:///….")

    @property
    def display_url(self) -> str:
        """The URL with its password hidden: what errors and metadata may show."""
        return sa.make_url(self.url).render_as_string(hide_password=True)

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A transaction on a pooled engine (one per URL; schema created on first use).
        An unreachable database is a MonitoringDatabaseError naming it (no password)."""
        try:
            with _engine(self.url).begin() as connection:
                yield connection
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            password = sa.make_url(self.url).password
            reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
            if password:
                reason = reason.replace(str(password), "***")
            raise MonitoringDatabaseError(
                f"monitoring database {self.display_url} unreachable: {reason[:300]}"
            ) from None

    # ---- metrics ---------------------------------------------------------------------
    def record_batch(self, partition: str, row: dict[str, Any]) -> None:
        values = {
            **row,
            "partition": partition,
            "feature_scores": json.dumps(row["feature_scores"]),
            "updated_at": datetime.now(UTC),
        }
        for column in ("prediction_counts", "confusion"):  # JSON, or None when unknown
            if values.get(column) is not None:
                values[column] = json.dumps(values[column])
        with self.connect() as db:
            db.execute(sa.delete(BATCH_METRICS).where(BATCH_METRICS.c.partition == partition))
            db.execute(sa.insert(BATCH_METRICS).values(**values))

    def migrate(self) -> str:
        """Migrate the schema now (deploy, ``studperf up``); returns the revision."""
        with self.connect() as db:  # the engine migrates when it is first made
            return str(current_revision(db))

    def batches(self, partitions: Iterable[str] | None = None) -> list[dict[str, Any]]:
        query = sa.select(BATCH_METRICS).order_by(BATCH_METRICS.c.partition)
        if partitions is not None:
            query = query.where(BATCH_METRICS.c.partition.in_(list(partitions)))
        with self.connect() as db:
            return [dict(r) for r in db.execute(query).mappings()]

    # ---- the daily rollup ------------------------------------------------------------------
    def day_windows(self, day: date) -> list[dict[str, Any]]:
        """The ``batch_metrics`` rows of the windows starting on ``day`` (UTC), oldest first."""
        first, after = day_bounds(day)
        with self.connect() as db:
            key = _bytewise(db, BATCH_METRICS.c.partition)
            query = sa.select(BATCH_METRICS).where((key >= first) & (key < after)).order_by(key)
            return [dict(r) for r in db.execute(query).mappings()]

    def day_verdicts(self, day: date) -> dict[str, dict[str, bool]]:
        """partition -> check group -> passed, for the windows starting on ``day``."""
        first, after = day_bounds(day)
        found: dict[str, dict[str, bool]] = {}
        with self.connect() as db:
            key = _bytewise(db, CHECK_VERDICTS.c.partition)
            query = sa.select(
                CHECK_VERDICTS.c.partition, CHECK_VERDICTS.c.check_group, CHECK_VERDICTS.c.passed
            ).where((key >= first) & (key < after))
            for partition, group, passed in db.execute(query).all():
                found.setdefault(partition, {})[group] = bool(passed)
        return found

    def record_day(self, row: dict[str, Any]) -> None:
        """Insert or replace the ``daily_metrics`` row of ``row["day"]`` (one statement: two
        runs of the same day never collide)."""
        values = {**row, "updated_at": datetime.now(UTC)}
        with self.connect() as db:
            if db.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
            statement = insert(DAILY_METRICS).values(**values)
            changed = {k: statement.excluded[k] for k in values if k != "day"}
            db.execute(statement.on_conflict_do_update(index_elements=["day"], set_=changed))

    def daily_metrics(self, days: Iterable[date] | None = None) -> list[dict[str, Any]]:
        """``daily_metrics`` rows, oldest first (JSON columns decoded)."""
        query = sa.select(DAILY_METRICS).order_by(DAILY_METRICS.c.day)
        if days is not None:
            query = query.where(DAILY_METRICS.c.day.in_(sorted(set(days))))
        with self.connect() as db:
            rows = [dict(r) for r in db.execute(query).mappings()]
        for row in rows:
            row["failing_windows"] = json.loads(row["failing_windows"])
            row["prediction_shares"] = json.loads(row["prediction_shares"])
            row["updated_at"] = _aware(row["updated_at"])
        return rows

    def rolled_up_days(self, days: Iterable[date]) -> set[date]:
        """Those of ``days`` that have a ``daily_metrics`` row."""
        query = sa.select(DAILY_METRICS.c.day).where(DAILY_METRICS.c.day.in_(sorted(set(days))))
        with self.connect() as db:
            return set(db.execute(query).scalars())

    # ---- predictions and their ground truth ---------------------------------------------
    def index_predictions(self, partition: str, request_ids: Iterable[str]) -> None:
        """Record which predictions window ``partition`` holds (replacing what it held), as
        hashes (``lib.request_ids``): what the late-labels sensor looks up."""
        hashes = sorted({id_hash(str(r)) for r in request_ids})
        with self.connect() as db:
            window_id = self._window_id(db, partition)
            db.execute(sa.delete(PREDICTION_IDS).where(PREDICTION_IDS.c.window_id == window_id))
            for start in range(0, len(hashes), INSERT_PAGE):
                page = hashes[start : start + INSERT_PAGE]
                db.execute(
                    sa.insert(PREDICTION_IDS),
                    [{"id_hash": h, "window_id": window_id} for h in page],
                )

    @staticmethod
    def _window_id(db: sa.Connection, partition: str) -> int:
        """The window's number in ``indexed_windows``, added if new, and its row locked
        until the transaction ends (PostgreSQL: ``FOR UPDATE``; SQLite has one writer at a
        time): two runs of one window re-indexing it at once take turns. Without the lock
        the second one's DELETE missed the rows the first was inserting, and its INSERT
        then failed on their primary key."""
        if db.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        db.execute(insert(INDEXED_WINDOWS).values(partition=partition).on_conflict_do_nothing())
        query = (
            sa.select(INDEXED_WINDOWS.c.window_id)
            .where(INDEXED_WINDOWS.c.partition == partition)
            .with_for_update()
        )
        return int(db.execute(query).scalar_one())

    def partitions_for(self, request_ids: Iterable[str]) -> set[str]:
        """The monitoring partitions that may hold any of these predictions (a hash shared
        by two IDs can add a window that holds neither: a re-run for nothing)."""
        found: set[str] = set()
        hashes = sorted({id_hash(str(r)) for r in request_ids})
        with self.connect() as db:
            for chunk in _chunks(hashes):
                query = (
                    sa.select(INDEXED_WINDOWS.c.partition)
                    .join(PREDICTION_IDS, PREDICTION_IDS.c.window_id == INDEXED_WINDOWS.c.window_id)
                    .where(PREDICTION_IDS.c.id_hash.in_(chunk))
                )
                found.update(db.execute(query.distinct()).scalars())
        return found

    def labels_of(self, request_ids: Iterable[str]) -> pd.DataFrame:
        """request_id, GradeClass and conflict flag of the labels of these predictions (the
        ones labelled so far), looked up by request ID."""
        rows: list[Any] = []
        with self.connect() as db:
            for chunk in _chunks(sorted({str(r) for r in request_ids})):
                query = sa.select(
                    LABELS.c.request_id, LABELS.c.grade_class, LABELS.c.conflict
                ).where(LABELS.c.request_id.in_(chunk))
                rows.extend(db.execute(query).all())
        return pd.DataFrame(rows, columns=[REQUEST_ID, TARGET, "conflict"]).astype(
            {REQUEST_ID: str, TARGET: "int64", "conflict": bool}
        )

    def forget_windows(self, partitions: Iterable[str]) -> int:
        """Drop the prediction index and label joins of retired windows (window retention):
        the index is the monitoring database's only table that grows with traffic, and a
        retired window is never joined with labels again. Metrics, statuses, verdicts and
        labels are kept. Returns the index rows deleted."""
        deleted = 0
        with self.connect() as db:
            for chunk in _chunks(sorted(set(partitions))):
                numbers = sa.select(INDEXED_WINDOWS.c.window_id).where(
                    INDEXED_WINDOWS.c.partition.in_(chunk)
                )
                result = db.execute(
                    sa.delete(PREDICTION_IDS).where(PREDICTION_IDS.c.window_id.in_(numbers))
                )
                deleted += int(result.rowcount or 0)
                db.execute(sa.delete(INDEXED_WINDOWS).where(INDEXED_WINDOWS.c.partition.in_(chunk)))
                db.execute(sa.delete(LABEL_JOINS).where(LABEL_JOINS.c.partition.in_(chunk)))
        return deleted

    def record_label_join(
        self, partition: str, joined_at: datetime, rows: int, labelled: int
    ) -> None:
        """Insert or replace the window's label join (one statement: two runs of one window
        recording theirs at once never collide on its key)."""
        values = {
            "partition": partition,
            "joined_at": joined_at,
            "rows": rows,
            "labelled": labelled,
        }
        with self.connect() as db:
            if db.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
            statement = insert(LABEL_JOINS).values(**values)
            changed = {k: statement.excluded[k] for k in values if k != "partition"}
            db.execute(statement.on_conflict_do_update(index_elements=["partition"], set_=changed))

    def label_joins(self, partitions: Iterable[str]) -> dict[str, dict[str, Any]]:
        """partition -> joined_at, rows, labelled (partitions that never joined are absent)."""
        found: dict[str, dict[str, Any]] = {}
        with self.connect() as db:
            for chunk in _chunks(sorted(set(partitions))):
                query = sa.select(LABEL_JOINS).where(LABEL_JOINS.c.partition.in_(chunk))
                for row in db.execute(query).mappings():
                    found[row["partition"]] = {**row, "joined_at": _aware(row["joined_at"])}
        return found

    def label_file_states(self, files: Mapping[str, str]) -> dict[str, tuple[str, datetime]]:
        """key -> (status, handled at) for the label files among ``files`` (key -> version)
        already ingested or rejected at that version, or before file versions were kept
        (``ANY_VERSION``): looked up by ``stored_key``, so an over-long name is found too."""
        wanted = {stored_key(k): (k, stored_version(v)) for k, v in files.items()}
        found: dict[str, tuple[str, datetime]] = {}
        with self.connect() as db:
            for chunk in _chunks(sorted(wanted)):
                query = sa.select(
                    LABEL_FILES.c.key,
                    LABEL_FILES.c.version,
                    LABEL_FILES.c.status,
                    LABEL_FILES.c.ingested_at,
                ).where(LABEL_FILES.c.key.in_(chunk))
                for stored, version, status, at in db.execute(query).all():
                    key, wanted_version = wanted[stored]
                    if version in (wanted_version, ANY_VERSION):
                        found[key] = (status, _aware(at))
        return found

    def label_files_handled_since(self, after: datetime) -> list[tuple[str, str, str, datetime]]:
        """(stored key, version, status, handled at) of label files handled at or after
        ``after``, oldest first: what a sensor has not looked at yet."""
        ledger = LABEL_FILES.c
        query = (
            sa.select(ledger.key, ledger.version, ledger.status, ledger.ingested_at)
            .where(ledger.ingested_at >= after)
            .order_by(ledger.ingested_at, ledger.key, ledger.version)
        )
        with self.connect() as db:
            return [(k, v, s, _aware(at)) for k, v, s, at in db.execute(query).all()]

    def request_ids_labelled_by(self, key: str) -> set[str]:
        """The predictions an ingested label file gave their first label (by stored key)."""
        query = sa.select(LABELS.c.request_id).where(LABELS.c.label_file == key)
        with self.connect() as db:
            return set(db.execute(query).scalars())

    def ingest_labels(
        self, key: str, frame: pd.DataFrame, version: str = ANY_VERSION
    ) -> IngestedFile | None:
        """Add a validated label file's labels, once per file version (``ANY_VERSION``: for
        every version): None if it was handled before.

        Labels are keyed by request_id, so a file read again (rewritten under its key) adds
        only what is new: the same grade again is counted as a duplicate, a different grade
        for a labelled prediction marks that label as a conflict, reported, not resolved."""
        for attempt in range(3):
            try:
                return self._ingest(key, frame, version)
            except sa.exc.IntegrityError:
                if self.label_file_states({key: version}):
                    return None  # another run ingested this file meanwhile
                if attempt == 2:
                    raise
            except sa.exc.DataError as exc:  # a value the database will not hold
                reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
                raise LabelFileRefused(f"the database refused it ({reason[:200]})") from None
            except MonitoringDatabaseError:
                raise  # an outage is loud: the file waits for the next run
            except Exception as exc:  # one file never fails a run
                text = (str(exc).strip().splitlines() or [""])[0][:200]
                raise LabelFileRefused(
                    f"could not be stored ({type(exc).__name__}: {text})"
                ) from exc
        return None

    def _ingest(self, key: str, frame: pd.DataFrame, version: str) -> IngestedFile:
        now = datetime.now(UTC)
        stored, stored_as = stored_key(key), stored_version(version)
        with self.connect() as db:
            # The file's row goes first: a concurrent ingester of the same file fails here.
            db.execute(
                sa.insert(LABEL_FILES).values(
                    key=stored, version=stored_as, arrival=_arrival(key), status="ingested",
                    rows=len(frame), new_labels=0, duplicates=0, conflicts=0, ingested_at=now,
                )
            )  # fmt: skip
            known: dict[str, int] = {}
            ids = sorted(set(frame[REQUEST_ID]))
            for chunk in _chunks(ids):
                query = sa.select(LABELS.c.request_id, LABELS.c.grade_class).where(
                    LABELS.c.request_id.in_(chunk)
                )
                known.update({r: int(g) for r, g in db.execute(query).all()})
            resolution = resolve(frame, known)
            new = resolution.new
            if len(new):
                raw = new[list(RAW_COLUMNS)].to_dict(orient="records")
                db.execute(
                    sa.insert(LABELS),
                    [
                        {
                            "request_id": request_id,
                            "grade_class": int(grade),
                            "conflict": False,
                            "available_at": pd.Timestamp(at).to_pydatetime(),
                            "label_file": stored,
                            "raw_row": json.dumps(row),
                        }
                        for request_id, grade, at, row in zip(
                            new[REQUEST_ID], new[TARGET], new[AVAILABLE_AT], raw, strict=True
                        )
                    ],
                )
            conflicts = sorted(set(resolution.conflicts))
            for chunk in _chunks(conflicts):
                db.execute(
                    sa.update(LABELS).where(LABELS.c.request_id.in_(chunk)).values(conflict=True)
                )
            db.execute(
                sa.update(LABEL_FILES)
                .where((LABEL_FILES.c.key == stored) & (LABEL_FILES.c.version == stored_as))
                .values(
                    new_labels=len(new),
                    duplicates=resolution.duplicates,
                    conflicts=len(resolution.conflicts),
                )
            )
        return IngestedFile(key, len(frame), len(new), resolution.duplicates, conflicts)

    def reject_label_file(self, key: str, problem: str, version: str = ANY_VERSION) -> bool:
        """Record a label file version that cannot be used, once; False if it was handled
        before. The file is read again once it changes (a copy caught half-written)."""
        try:
            with self.connect() as db:
                db.execute(
                    sa.insert(LABEL_FILES).values(
                        key=stored_key(key), version=stored_version(version),
                        arrival=_arrival(key), status="rejected", rows=0,
                        new_labels=0, duplicates=0, conflicts=0, problem=problem,
                        ingested_at=datetime.now(UTC),
                    )
                )  # fmt: skip
        except sa.exc.IntegrityError:
            return False
        return True

    def label_count(self) -> int:
        """Labels usable for training (conflicting ones are not)."""
        with self.connect() as db:
            query = sa.select(sa.func.count()).select_from(LABELS).where(~LABELS.c.conflict)
            return int(db.execute(query).scalar_one())

    def training_labels(self) -> pd.DataFrame:
        """Every non-conflicting label as a raw row, with ``available_at``."""
        query = sa.select(LABELS.c.raw_row, LABELS.c.available_at).where(~LABELS.c.conflict)
        with self.connect() as db:
            rows = db.execute(query).all()
        frame = pd.DataFrame([json.loads(raw) for raw, _ in rows], columns=list(RAW_COLUMNS))
        frame[AVAILABLE_AT] = [at for _, at in rows]
        return frame
