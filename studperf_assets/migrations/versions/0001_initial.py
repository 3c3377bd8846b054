"""The monitoring database as it was before migrations: batch metrics, sent alerts and the
ground-truth index (a database created then is stamped at this revision, not re-created).

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_metrics",
        sa.Column("partition", sa.String(200), primary_key=True),
        sa.Column("model_version", sa.String(100), nullable=False),
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
    )
    op.create_table(
        "alerts_sent",
        sa.Column("partition", sa.String(200), primary_key=True),
        sa.Column("check_name", sa.String(200), primary_key=True),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "prediction_index",
        sa.Column("partition", sa.String(200), primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
    )
    op.create_index("ix_prediction_index_request_id", "prediction_index", ["request_id"])
    op.create_table(
        "labels",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("grade_class", sa.Integer, nullable=False),
        sa.Column("conflict", sa.Boolean, nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("label_file", sa.String(300), nullable=False),
        sa.Column("raw_row", sa.Text, nullable=False),
    )
    op.create_table(
        "label_files",
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("arrival", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("new_labels", sa.Integer, nullable=False),
        sa.Column("duplicates", sa.Integer, nullable=False),
        sa.Column("conflicts", sa.Integer, nullable=False),
        sa.Column("problem", sa.Text),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "label_joins",
        sa.Column("partition", sa.String(200), primary_key=True),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("labelled", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "label_joins",
        "label_files",
        "labels",
        "prediction_index",
        "alerts_sent",
        "batch_metrics",
    ):
        op.drop_table(table)
