"""object fetches: event-driven fetches, coalesced per object, waiting in the database

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from events.db import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = UTCDateTime(timezone=True)
    op.create_table(
        "object_fetches",
        sa.Column("source", sa.String(length=100), primary_key=True),
        sa.Column("stream", sa.String(length=100), primary_key=True),
        sa.Column("object_id", sa.String(length=200), primary_key=True),
        sa.Column("vendor", sa.String(length=50), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("due_at", when, nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("first_asked_at", when, nullable=False),
        sa.Column("wanted_version", when, nullable=True),
        sa.Column("fetched_version", when, nullable=True),
        sa.Column("fetched_at", when, nullable=True),
        sa.Column("lease_token", sa.String(length=36), nullable=True),
        sa.Column("lease_until", when, nullable=True),
        sa.Column("queued_at", when, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("waits", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_index("ix_object_fetches_due", "object_fetches", ["state", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_object_fetches_due", table_name="object_fetches")
    op.drop_table("object_fetches")
