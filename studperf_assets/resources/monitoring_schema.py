"""The monitoring database's tables, their bounds, and the one way its schema is created.

The schema is migrated by Alembic (``studperf_assets/migrations``), once, under a lock: a
PostgreSQL advisory lock, or a file lock beside a SQLite file. Every process that opens the
database calls ``ensure_schema`` (a single query when the schema is current); ``studperf
init-db`` and ``studperf up`` call it at deploy and start. Two first users of a fresh database
therefore never both create a table (which raised "table already exists" about 3 times in 40,
and was reported as an unreachable database).

Bounded columns are declared here with their limits (``LIMITS``); values from outside (label
files, stream records) are validated against them before they reach the database.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

METADATA = sa.MetaData()
PARTITION_LENGTH = 200
REQUEST_ID_LENGTH = 128
LABEL_KEY_LENGTH = 300
MODEL_VERSION_LENGTH = 100

BATCH_METRICS = sa.Table(
    "batch_metrics",
    METADATA,
    sa.Column("partition", sa.String(PARTITION_LENGTH), primary_key=True),
    sa.Column("model_version", sa.String(MODEL_VERSION_LENGTH), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("labelled_rows", sa.Integer, nullable=False),
    sa.Column("drift_share", sa.Float, nullable=False),
    sa.Column("prediction_drift", sa.Float, nullable=False),
    sa.Column("target_drift", sa.Float),
    sa.Column("f1_macro", sa.Float),
    sa.Column("accuracy", sa.Float),
    sa.Column("feature_scores", sa.Text, nullable=False),
    sa.Column("report_uri", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # From migration 0005 (None in older rows): what the daily rollup sums
    sa.Column("small", sa.Boolean),  # closed after the maximum wait with fewer rows
    sa.Column("prediction_counts", sa.Text),  # JSON: grade letter -> predictions
    sa.Column("confusion", sa.Text),  # JSON: 5x5 over the labelled rows (true x predicted)
)
# One row per UTC day of windows (``monitoring_daily``, ``lib.daily_rollup``); a window's
# partition is deleted after retention only once its day has a row here.
DAILY_METRICS = sa.Table(
    "daily_metrics",
    METADATA,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("windows", sa.Integer, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("labelled_rows", sa.Integer, nullable=False),
    sa.Column("small_windows", sa.Integer, nullable=False),
    sa.Column("drift_share_mean", sa.Float),
    sa.Column("drift_share_max", sa.Float),
    sa.Column("failing_windows", sa.Text, nullable=False),  # JSON: check group -> windows
    sa.Column("prediction_shares", sa.Text, nullable=False),  # JSON: grade letter -> share
    sa.Column("f1_macro", sa.Float),
    sa.Column("accuracy", sa.Float),
    sa.Column("quality_basis", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
# One row per batch and check e-mailed, written until alerts became incidents (migration
# 0003); kept, no longer written.
ALERTS_SENT = sa.Table(
    "alerts_sent",
    METADATA,
    sa.Column("partition", sa.String(PARTITION_LENGTH), primary_key=True),
    sa.Column("check_name", sa.String(200), primary_key=True),
    sa.Column("message_id", sa.String(200), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
)
# Which window holds which prediction, for one purpose: a label file names request IDs, not
# times, and the late-labels sensor must find the windows it labels. A row is 8 bytes of the
# request ID's BLAKE2b and the window's number (``indexed_windows``), whatever the ID's
# length: a prediction costs about 30 bytes here, not a copy of its ID and window key. Two
# IDs with one hash can only re-run a window for nothing: labels are joined by the request
# ID itself (``MetricsDatabase.labels_of``). (Until migration 0006: ``prediction_index``.)
INDEXED_WINDOWS = sa.Table(
    "indexed_windows",
    METADATA,
    sa.Column("window_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("partition", sa.String(PARTITION_LENGTH), nullable=False, unique=True),
)
PREDICTION_IDS = sa.Table(
    "prediction_ids",
    METADATA,
    sa.Column("id_hash", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("window_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Index("ix_prediction_ids_window_id", "window_id"),
    sqlite_with_rowid=False,  # the key is the row: no rowid B-tree beside it
)
# One label per prediction; a second, different grade marks it a conflict (not resolved).
LABELS = sa.Table(
    "labels",
    METADATA,
    sa.Column("request_id", sa.String(REQUEST_ID_LENGTH), primary_key=True),
    sa.Column("grade_class", sa.Integer, nullable=False),
    sa.Column("conflict", sa.Boolean, nullable=False, default=False),
    sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("label_file", sa.String(LABEL_KEY_LENGTH), nullable=False),
    sa.Column("raw_row", sa.Text, nullable=False),  # the raw columns, for retraining
)
LABEL_VERSION_LENGTH = 100
ANY_VERSION = "*"  # a row from before file versions (migration 0003): handled, any version
# The ledger of label files handled: one row per file version (S3's ETag; size and mtime_ns
# in a folder), so a file rewritten under the same key is read again, an unchanged one never.
LABEL_FILES = sa.Table(
    "label_files",
    METADATA,
    sa.Column("key", sa.String(LABEL_KEY_LENGTH), nullable=False),  # see stored_key
    sa.Column(
        "version",
        sa.String(LABEL_VERSION_LENGTH),
        nullable=False,
        server_default=sa.text(f"'{ANY_VERSION}'"),
    ),  # see stored_version
    sa.Column("arrival", sa.DateTime(timezone=True)),  # from the key; None if misnamed
    sa.Column("status", sa.String(20), nullable=False),  # ingested | rejected
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("new_labels", sa.Integer, nullable=False),
    sa.Column("duplicates", sa.Integer, nullable=False),
    sa.Column("conflicts", sa.Integer, nullable=False),
    sa.Column("problem", sa.Text),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("key", "version", name="label_files_pkey"),
)
# When a batch last joined its labels: a label file ingested after that is news to it.
LABEL_JOINS = sa.Table(
    "label_joins",
    METADATA,
    sa.Column("partition", sa.String(PARTITION_LENGTH), primary_key=True),
    sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("labelled", sa.Integer, nullable=False),
)
# Every monitoring partition's fate: monitored, or failed (with the step and the error), so
# a partition that could not be monitored is a row saying so, never just missing.
MONITORING_STATUS = sa.Table(
    "monitoring_status",
    METADATA,
    sa.Column("partition", sa.String(PARTITION_LENGTH), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),  # monitored | failed
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("step", sa.String(200)),
    sa.Column("error", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
OPEN = sa.text("status = 'open'")
INCIDENTS = sa.Table(
    "incidents",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_key", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # open | resolved
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("occurrences", sa.Integer, nullable=False),
    sa.Column("first_partition", sa.String(PARTITION_LENGTH)),
    sa.Column("last_partition", sa.String(PARTITION_LENGTH)),
    sa.Column("notified_at", sa.DateTime(timezone=True)),  # the last e-mail about it
    sa.Column("notifications", sa.Integer, nullable=False),
    sa.Column("resolution_notified_at", sa.DateTime(timezone=True)),
    sa.Column("details", sa.Text, nullable=False),  # JSON: what the e-mail says
    sa.Index(
        "ux_incidents_open_key",
        "incident_key",
        unique=True,
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    ),
    sa.Index("ix_incidents_status", "status"),
)
# Each monitored window's verdict per group of checks (``lib.incidents.CHECK_GROUPS``):
# the newest run of the window decides it, and a failing window belongs to one incident
# (``incident_id``, kept when the window is re-run), so re-reading runs opens nothing twice.
CHECK_VERDICTS = sa.Table(
    "check_verdicts",
    METADATA,
    sa.Column("partition", sa.String(PARTITION_LENGTH), primary_key=True),
    sa.Column("check_group", sa.String(100), primary_key=True),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("failed", sa.Text, nullable=False),  # JSON: failed check -> its metadata
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("run_finished_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("incident_id", sa.Integer),
    sa.Index("ix_check_verdicts_incident", "incident_id"),
)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
ADVISORY_LOCK = 0x5354_5544_5045_5246  # "STUDPERF": one schema migration at a time


_UNPRINTABLE = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))


def printable_key(key: str) -> str:
    """A key as messages, e-mails and the database can carry it: the key itself when it is
    printable text; else bytes that were not UTF-8 (a local file name, decoded by Python as
    surrogates) as ``\\xff`` and control, format or invisible characters as ``\\u202e``."""
    out: list[str] = []
    for char in key:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for a byte that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(char) in _UNPRINTABLE:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def key_problem(key: str, limit: int = LABEL_KEY_LENGTH) -> str | None:
    """Why a label file's key cannot be kept as it is (then the file is rejected, by its
    ``printable_key``, and recorded under its ``stored_key``), or None."""
    if printable_key(key) != key:
        return (
            "its name holds bytes that are not UTF-8 text, or control or invisible "
            "characters (shown escaped): rename it"
        )
    if len(key) > limit:
        return f"its name is {len(key)} characters, over the {limit} the ledger keeps: rename it"
    return None


def stored_key(key: str, limit: int = LABEL_KEY_LENGTH) -> str:
    """A label file's key as the database keeps it: the key itself when it is printable and
    fits its column, else its escaped form (``printable_key``), cut, and the sha256 of the
    whole key (unique, and the same on every run, so such a file is recorded once and
    never met again)."""
    shown = printable_key(key)
    if shown == key and len(key) <= limit:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{shown[: limit - len(digest) - 3]}...{digest}"


def stored_version(version: str, limit: int = LABEL_VERSION_LENGTH) -> str:
    """A label file's version as the ledger keeps it: itself when printable and short (an
    ETag, size and mtime_ns), else its sha256 (the same on every run)."""
    if printable_key(version) == version and 0 < len(version) <= limit:
        return version
    return hashlib.sha256(version.encode("utf-8", "surrogatepass")).hexdigest()


def _alembic_config(connection: sa.Connection) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    config = _alembic_config(None)  # type: ignore[arg-type]
    head = ScriptDirectory.from_config(config).get_current_head()  # type: ignore[arg-type]
    assert head is not None
    return head


def current_revision(connection: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def ensure_schema(engine: sa.Engine) -> str:
    """Migrate the database to the newest revision, once, whoever else tries at the same
    time; returns the revision. A database made before migrations (its tables present, no
    Alembic version) is stamped at the first revision, then migrated."""
    with engine.connect() as connection:
        if current_revision(connection) == head_revision():
            return head_revision()
    with _exclusive(engine) as connection:
        from alembic import command

        config = _alembic_config(connection)
        if current_revision(connection) is None and sa.inspect(connection).has_table(
            "batch_metrics"
        ):
            command.stamp(config, "0001")  # type: ignore[arg-type]
        command.upgrade(config, "head")  # type: ignore[arg-type]
        return head_revision()


@contextmanager
def _exclusive(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection in a transaction that no other migrator holds at the same time."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        lock = Path(f"{database}.schema-lock") if database else None
        with _file_lock(lock), engine.begin() as connection:
            yield connection
        return
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK)))
        yield connection


@contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    if path is None:  # an in-memory database has a single user
        yield
        return
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):
        yield
