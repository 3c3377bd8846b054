"""Failed checks as incidents: each window's verdict per group of checks, and the incident
a failing window belongs to.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "check_verdicts",
        sa.Column("partition", sa.String(200), primary_key=True),
        sa.Column("check_group", sa.String(100), primary_key=True),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("failed", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("run_finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("incident_id", sa.Integer),
    )
    op.create_index("ix_check_verdicts_incident", "check_verdicts", ["incident_id"])


def downgrade() -> None:
    op.drop_table("check_verdicts")
