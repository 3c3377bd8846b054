"""What could not be monitored, and incidents: one alert per incident, not per failure.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    op.create_table(
        "monitoring_status",
        sa.Column("partition", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("step", sa.String(200)),
        sa.Column("error", sa.Text),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("occurrences", sa.Integer, nullable=False),
        sa.Column("first_partition", sa.String(200)),
        sa.Column("last_partition", sa.String(200)),
        sa.Column("notified_at", sa.DateTime(timezone=True)),
        sa.Column("notifications", sa.Integer, nullable=False),
        sa.Column("resolution_notified_at", sa.DateTime(timezone=True)),
        sa.Column("details", sa.Text, nullable=False),
    )
    # At most one open incident per key: two ticks (or two processes) opening the same
    # incident race on this index, and the loser joins the winner's incident.
    op.create_index(
        "ux_incidents_open_key",
        "incidents",
        ["incident_key"],
        unique=True,
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )
    op.create_index("ix_incidents_status", "incidents", ["status"])


def downgrade() -> None:
    op.drop_table("incidents")
    op.drop_table("monitoring_status")
