"""syncs: cursors with leases, run history, quarantine; records written by a sync

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from events.db import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_cursors",
        sa.Column("source", sa.String(length=100), primary_key=True),
        sa.Column("stream", sa.String(length=100), primary_key=True),
        sa.Column("cursor", sa.JSON(), nullable=True),
        sa.Column("checkpoint_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("fresh_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_token", sa.String(length=36), nullable=True),
        sa.Column("lease_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("resume_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("queued_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("stream", sa.String(length=100), nullable=False),
        sa.Column("slot", sa.String(length=100), nullable=False),
        sa.Column("triggered_by", sa.String(length=16), nullable=False),
        sa.Column("full_sync", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("pages", "records", "applied", "stale", "quarantined", "changed", "covered")
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cursor_before", sa.JSON(), nullable=True),
        sa.Column("cursor_after", sa.JSON(), nullable=True),
        sa.UniqueConstraint("source", "stream", "slot", name="uq_sync_runs_slot"),
    )
    op.create_index("ix_sync_runs_stream_started", "sync_runs", ["source", "stream", "started_at"])
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("stream", sa.String(length=100), nullable=False),
        sa.Column("vendor", sa.String(length=50), nullable=False),
        sa.Column("item_key", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("item", sa.JSON(), nullable=True),
        sa.Column("first_seen_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("seen", sa.Integer(), nullable=False),
        sa.UniqueConstraint("source", "stream", "item_key", name="uq_quarantine_item"),
    )
    op.create_index("ix_quarantine_last_seen", "quarantine", ["last_seen_at"])
    with op.batch_alter_table("records") as batch:
        batch.alter_column("event_id", existing_type=sa.String(length=36), nullable=True)
        batch.add_column(sa.Column("run_id", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.drop_column("run_id")
        batch.alter_column("event_id", existing_type=sa.String(length=36), nullable=False)
    op.drop_index("ix_quarantine_last_seen", table_name="quarantine")
    op.drop_table("quarantine")
    op.drop_index("ix_sync_runs_stream_started", table_name="sync_runs")
    op.drop_table("sync_runs")
    op.drop_table("sync_cursors")
