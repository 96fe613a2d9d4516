"""leases: beat leadership with a fencing token

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

import events.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = events.db.UTCDateTime(timezone=True)
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", when, nullable=False),
        sa.Column("expires_at", when, nullable=False),
        sa.Column("last_runs", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("leases")
