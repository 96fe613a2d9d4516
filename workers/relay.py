"""The relay: republish unfinished events whose message may be lost.

It covers a broker that was down when the ingress published, a flushed Redis, a worker killed
holding a lease, and retries that have come due. Republishing is harmless: claiming is idempotent.
Each event backs off (grace × 2^n, capped) so a long backlog is not flooded with copies.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy import Engine, update

from events import metrics
from events.db import events, utcnow
from events.queue import publish
from workers.processing import due_for_relay

log = structlog.get_logger()

MAX_BACKOFF_DOUBLINGS = 5


def relay(engine: Engine, *, grace_s: float, limit: int) -> int:
    now = utcnow()
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
