"""The relay: republish unfinished events and action runs whose message may be lost.

It covers a broker that was down when the ingress (or a worker) published, a flushed Redis or a
purged or dead-lettered RabbitMQ message, a worker killed holding a lease (those events go one per
message), and retries (and debounced actions) that have come due. Republishing is
harmless: claiming is idempotent. Each row backs off (grace × 2^n, capped) so a long backlog is not
flooded with copies.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, Table, select, update

from events import metrics
from events.db import ACTION_UNFINISHED, UNFINISHED, EventState, action_runs, events
from events.queue import publish, publish_actions

log = structlog.get_logger()

MAX_BACKOFF_DOUBLINGS = 5
ACTIONS = "actions"  # the relay metric's label for action runs


def _due(conn: Connection, table: Table, states: tuple[str, ...], now: datetime, limit: int) -> list[Any]:
    """Unfinished rows whose relay time has come, oldest first (locked against a second relay)."""
    columns = [table.c.id, table.c.vendor, table.c.state, table.c.relayed]
    stmt = (
        select(*columns)
        .where(table.c.state.in_(states), table.c.relay_at <= now)
        .order_by(table.c.relay_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(conn.execute(stmt))


def due_for_relay(conn: Connection, now: datetime, limit: int) -> list[Any]:
    """Unfinished events whose relay time has come, oldest first (locked against a second relay)."""
    return _due(conn, events, UNFINISHED, now, limit)


def split_lost(rows: list[Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(event id, vendor) pairs to send batched, and those to send one per message: a lease that
    expired mid-processing means its worker died, maybe because of that very event, so it travels
    alone and cannot take innocent neighbours down with it again."""
    together = [(row.id, row.vendor) for row in rows if row.state != EventState.PROCESSING]
    alone = [(row.id, row.vendor) for row in rows if row.state == EventState.PROCESSING]
    return together, alone


def _push_back(conn: Connection, table: Table, rows: list[Any], now: datetime, grace_s: float) -> None:
    for doublings in {min(row.relayed, MAX_BACKOFF_DOUBLINGS) for row in rows}:
        ids = [r.id for r in rows if min(r.relayed, MAX_BACKOFF_DOUBLINGS) == doublings]
        conn.execute(
            update(table)
            .where(table.c.id.in_(ids))
            .values(relay_at=now + timedelta(seconds=grace_s * 2**doublings), relayed=table.c.relayed + 1)
        )


def relay(engine: Engine, *, now: datetime, grace_s: float, limit: int) -> int:
    with engine.begin() as conn:
        rows = due_for_relay(conn, now, limit)
        if rows:
            together, alone = split_lost(rows)
            publish(together)
            publish(alone, per_message=1)
            _push_back(conn, events, rows, now, grace_s)
    with engine.begin() as conn:
        runs = _due(conn, action_runs, ACTION_UNFINISHED, now, limit)
        if runs:
            publish_actions(row.id for row in runs)
            _push_back(conn, action_runs, runs, now, grace_s)
    for row in rows:
        metrics.RELAYED.labels(row.vendor).inc()
    if runs:
        metrics.RELAYED.labels(ACTIONS).inc(len(runs))
    if rows or runs:
        log.info("relay.published", events=len(rows), actions=len(runs))
    return len(rows) + len(runs)
