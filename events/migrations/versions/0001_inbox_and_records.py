"""inbox and records

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-29 11:23:34.760461
"""

import sqlalchemy as sa
from alembic import op

import events.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("vendor", sa.String(length=50), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("dedupe_key", sa.String(length=500), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", events.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("occurred_at", events.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("available_at", events.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("relay_at", events.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("relayed", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.String(length=36), nullable=True),
        sa.Column("processed_at", events.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "dedupe_key", name="uq_events_source_dedupe"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_received", ["received_at"], unique=False)
        batch_op.create_index("ix_events_relay", ["state", "relay_at"], unique=False)

    op.create_table(
        "records",
        sa.Column("vendor", sa.String(length=50), nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", events.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("vendor", "kind", "external_id"),
    )


def downgrade() -> None:

    op.drop_table("records")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_relay")
        batch_op.drop_index("ix_events_received")

    op.drop_table("events")
