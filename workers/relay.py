"""The relay: republish unfinished events whose message may be lost.

It covers a broker that was down when the ingress published, a flushed Redis, a worker killed
holding a lease, and retries that have come due. Republishing is harmless: claiming is idempotent.
Each event backs off (grace × 2^n, capped) so a long backlog is not flooded with copies.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, select, update

from events import metrics
from events.db import UNFINISHED, events
from events.queue import publish

log = structlog.get_logger()

MAX_BACKOFF_DOUBLINGS = 5


def due_for_relay(conn: Connection, now: datetime, limit: int) -> list[Any]:
    """Unfinished events whose relay time has come, oldest first (locked against a second relay)."""
    stmt = (
        select(events.c.id, events.c.vendor, events.c.relayed)
        .where(events.c.state.in_(UNFINISHED), events.c.relay_at <= now)
        .order_by(events.c.relay_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(conn.execute(stmt))


def relay(engine: Engine, *, now: datetime, grace_s: float, limit: int) -> int:
    with engine.begin() as conn:
        rows = due_for_relay(conn, now, limit)
        if not rows:
            return 0
        publish((row.id, row.vendor) for row in rows)
        for doublings in {min(row.relayed, MAX_BACKOFF_DOUBLINGS) for row in rows}:
            ids = [r.id for r in rows if min(r.relayed, MAX_BACKOFF_DOUBLINGS) == doublings]
            conn.execute(
                update(events)
                .where(events.c.id.in_(ids))
                .values(
                    relay_at=now + timedelta(seconds=grace_s * 2**doublings), relayed=events.c.relayed + 1
                )
            )
    for row in rows:
        metrics.RELAYED.labels(row.vendor).inc()
    log.info("relay.published", events=len(rows))
    return len(rows)
