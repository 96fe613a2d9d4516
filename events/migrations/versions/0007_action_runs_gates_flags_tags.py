"""action runs, rule gates (throttle and debounce), runtime flags, event tags

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
    when = events.db.UTCDateTime(timezone=True)
    op.create_table(
        "action_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("vendor", sa.String(length=50), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("action_index", sa.Integer(), nullable=False),
        sa.Column("action_type", sa.String(length=100), nullable=False),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("gate_key", sa.String(length=200), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("attempts_before_replay", sa.Integer(), nullable=False),
        sa.Column("throttled_tries", sa.Integer(), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("available_at", when, nullable=False),
        sa.Column("relay_at", when, nullable=False),
        sa.Column("relayed", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.String(length=36), nullable=True),
        sa.Column("finished_at", when, nullable=True),
        sa.Column("error_class", sa.String(length=200), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("replays", sa.Integer(), nullable=False),
        sa.Column("replayed_at", when, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_action_runs_event_id", "action_runs", ["event_id"])
    op.create_index("ix_action_runs_relay", "action_runs", ["state", "relay_at"])
    op.create_index("ix_action_runs_rule_state", "action_runs", ["rule", "state"])
    op.create_index("ix_action_runs_gate", "action_runs", ["rule", "gate_key", "state"])
    op.create_table(
        "rule_gates",
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("fired", sa.JSON(), nullable=False),
        sa.Column("updated_at", when, nullable=False),
        sa.PrimaryKeyConstraint("rule", "key"),
    )
    op.create_table(
        "runtime_flags",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", when, nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("kind", "name"),
    )
    op.create_table(
        "event_tags",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("tag", sa.String(length=200), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.PrimaryKeyConstraint("event_id", "tag"),
    )


def downgrade() -> None:
    op.drop_table("event_tags")
    op.drop_table("runtime_flags")
    op.drop_table("rule_gates")
    op.drop_index("ix_action_runs_gate", table_name="action_runs")
    op.drop_index("ix_action_runs_rule_state", table_name="action_runs")
    op.drop_index("ix_action_runs_relay", table_name="action_runs")
    op.drop_index("ix_action_runs_event_id", table_name="action_runs")
    op.drop_table("action_runs")
