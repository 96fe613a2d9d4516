"""OAuth connections (sealed tokens, refresh lease) and install states

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

import events.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("source", sa.String(length=100), primary_key=True),
        sa.Column("provider", sa.String(length=50)),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("access_token", sa.Text()),
        sa.Column("refresh_token", sa.Text()),
        sa.Column("token_type", sa.String(length=40)),
        sa.Column("scope", sa.Text()),
        sa.Column("expires_at", events.db.UTCDateTime(timezone=True)),
        sa.Column("refresh_expires_at", events.db.UTCDateTime(timezone=True)),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("connected_at", events.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("connected_by", sa.String(length=100), nullable=False),
        sa.Column("refreshed_at", events.db.UTCDateTime(timezone=True)),
        sa.Column("reason", sa.Text()),
        sa.Column("lease_token", sa.String(length=36)),
        sa.Column("lease_until", events.db.UTCDateTime(timezone=True)),
    )
    op.create_table(
        "oauth_states",
        sa.Column("nonce_hash", sa.String(length=64), primary_key=True),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("verifier", sa.Text()),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("created_at", events.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", events.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", events.db.UTCDateTime(timezone=True)),
    )


def downgrade() -> None:
    op.drop_table("oauth_states")
    op.drop_table("connections")
