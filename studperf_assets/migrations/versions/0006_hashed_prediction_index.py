"""The prediction index as hashes: ``prediction_ids`` (8 bytes of each request ID's BLAKE2b
and a window number from ``indexed_windows``) replaces ``prediction_index`` (the window key
and the request ID, per prediction: 192 bytes a prediction in SQLite, 281 in PostgreSQL,
against 34 and 93; ``benchmarks/prediction_index.py``). Existing rows are carried over,
hashed, in pages: about 80,000 rows a second on PostgreSQL, in the migration's one
transaction, under its lock (docs/operations.md says when to run it before a deploy).

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

from studperf_assets.lib.request_ids import id_hash

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PAGE = 10_000


def upgrade() -> None:
    windows = op.create_table(
        "indexed_windows",
        sa.Column("window_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("partition", sa.String(200), nullable=False, unique=True),
    )
    hashed = op.create_table(
        "prediction_ids",
        sa.Column("id_hash", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("window_id", sa.Integer, primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_prediction_ids_window_id", "prediction_ids", ["window_id"])
    bind = op.get_bind()
    old = sa.Table("prediction_index", sa.MetaData(), autoload_with=bind)
    partitions = bind.execute(sa.select(old.c.partition).distinct()).scalars().all()
    for partition in partitions:
        window_id = bind.execute(
            sa.insert(windows).values(partition=partition).returning(windows.c.window_id)
        ).scalar_one()
        ids = bind.execute(sa.select(old.c.request_id).where(old.c.partition == partition))
        while page := ids.fetchmany(PAGE):
            rows = {(id_hash(r), window_id) for (r,) in page}
            bind.execute(
                sa.insert(hashed), [{"id_hash": h, "window_id": w} for h, w in sorted(rows)]
            )
    op.drop_table("prediction_index")  # its request_id index goes with it


def downgrade() -> None:
    """Back to an empty ``prediction_index``: hashes cannot be turned back into request IDs,
    so windows monitored before the downgrade are not re-run for their late labels."""
    op.create_table(
        "prediction_index",
        sa.Column("partition", sa.String(200), primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
    )
    op.create_index("ix_prediction_index_request_id", "prediction_index", ["request_id"])
    op.drop_index("ix_prediction_ids_window_id", table_name="prediction_ids")
    op.drop_table("prediction_ids")
    op.drop_table("indexed_windows")
