"""operations: monitor state, per-source hourly counts, application secrets

Revision ID: 0006
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

import events.db

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_state",
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("evaluated_at", events.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_event_at", events.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("learned_until", events.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("source"),
    )
    op.create_table(
        "source_counts",
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("hour", events.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", "name", "hour"),
    )
    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", events.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("attempts") as batch:
        batch.create_index("ix_attempts_started", ["started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_index("ix_attempts_started")
    op.drop_table("app_secrets")
    op.drop_table("source_counts")
    op.drop_table("monitor_state")
