"""The label ledger keeps a file's version: a file rewritten under the same key is read again.

Before, the ledger was keyed by name only, so a file rejected once (a ``cp`` caught half
written) was never read again, even after it was rewritten correctly. A version is the S3
ETag, or size and mtime_ns in a folder store. Rows from before this revision have the
version ``*``: handled whatever the file's version, as they were.

Revision ID: 0004
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ANY_VERSION = "*"
PRIMARY_KEY = "label_files_pkey"  # PostgreSQL's own name for the first one


COLUMNS = "key, arrival, status, rows, new_labels, duplicates, conflicts, problem, ingested_at"


def _columns(version_length: int = 100) -> list[sa.Column[Any]]:
    return [
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column(
            "version",
            sa.String(version_length),
            nullable=False,
            server_default=sa.text(f"'{ANY_VERSION}'"),
        ),
        sa.Column("arrival", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("new_labels", sa.Integer, nullable=False),
        sa.Column("duplicates", sa.Integer, nullable=False),
        sa.Column("conflicts", sa.Integer, nullable=False),
        sa.Column("problem", sa.Text),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    if "version" in {c["name"] for c in sa.inspect(bind).get_columns("label_files")}:
        return  # made by code that already knew versions (a database older than migrations)
    if bind.dialect.name == "sqlite":  # no ALTER of a primary key: copy the table
        op.create_table(
            "label_files_0003",
            *_columns(),
            sa.PrimaryKeyConstraint("key", "version", name=PRIMARY_KEY),
        )
        op.execute(
            f"INSERT INTO label_files_0003 ({COLUMNS}, version) "
            f"SELECT {COLUMNS}, '{ANY_VERSION}' FROM label_files"
        )
        op.drop_table("label_files")
        op.rename_table("label_files_0003", "label_files")
        return
    op.add_column("label_files", _columns()[1])  # existing rows: ANY_VERSION
    op.drop_constraint(PRIMARY_KEY, "label_files", type_="primary")
    op.create_primary_key(PRIMARY_KEY, "label_files", ["key", "version"])


def downgrade() -> None:
    # one row per key again: the newest handling of each file is kept
    op.execute(
        "DELETE FROM label_files WHERE EXISTS (SELECT 1 FROM label_files AS newer "
        "WHERE newer.key = label_files.key AND (newer.ingested_at > label_files.ingested_at "
        "OR (newer.ingested_at = label_files.ingested_at AND newer.version > label_files.version)))"
    )
    if op.get_bind().dialect.name == "sqlite":
        columns = [c for c in _columns() if c.name != "version"]
        op.create_table("label_files_0002", *columns, sa.PrimaryKeyConstraint("key"))
        op.execute(f"INSERT INTO label_files_0002 ({COLUMNS}) SELECT {COLUMNS} FROM label_files")
        op.drop_table("label_files")
        op.rename_table("label_files_0002", "label_files")
        return
    op.drop_constraint(PRIMARY_KEY, "label_files", type_="primary")
    op.drop_column("label_files", "version")
    op.create_primary_key(PRIMARY_KEY, "label_files", ["key"])
