"""replay guard and attempt numbers that continue after a replay

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("body_key", sa.String(length=80), nullable=True))
        batch.add_column(
            sa.Column("attempts_before_replay", sa.Integer(), nullable=False, server_default="0")
        )
        batch.create_unique_constraint("uq_events_source_body", ["source", "body_key"])


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("uq_events_source_body", type_="unique")
        batch.drop_column("attempts_before_replay")
        batch.drop_column("body_key")
