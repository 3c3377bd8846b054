"""The daily rollup: one row per UTC day of monitoring windows (``daily_metrics``), and what
a window's row keeps for it (whether it closed small, its predictions per grade and its
confusion matrix), so a day's class shares and quality are computed over its rows.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

WINDOW_COLUMNS = ("small", "prediction_counts", "confusion")


def upgrade() -> None:
    op.create_table(
        "daily_metrics",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("windows", sa.Integer, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("labelled_rows", sa.Integer, nullable=False),
        sa.Column("small_windows", sa.Integer, nullable=False),
        sa.Column("drift_share_mean", sa.Float),
        sa.Column("drift_share_max", sa.Float),
        sa.Column("failing_windows", sa.Text, nullable=False),
        sa.Column("prediction_shares", sa.Text, nullable=False),
        sa.Column("f1_macro", sa.Float),
        sa.Column("accuracy", sa.Float),
        sa.Column("quality_basis", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("batch_metrics")}
    with op.batch_alter_table("batch_metrics") as batch:  # SQLite: plain ADD COLUMN
        if "small" not in existing:
            batch.add_column(sa.Column("small", sa.Boolean))
        if "prediction_counts" not in existing:
            batch.add_column(sa.Column("prediction_counts", sa.Text))
        if "confusion" not in existing:
            batch.add_column(sa.Column("confusion", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("batch_metrics") as batch:
        for column in reversed(WINDOW_COLUMNS):
            batch.drop_column(column)
    op.drop_table("daily_metrics")
