"""Retention: prune what is finished and old, in bounded batches, by beat.

Processed events must outlive every vendor's retry horizon (WhatsApp retries for 7 days), or a late
redelivery would be taken for new; the defaults keep them 30 days.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import Engine, delete, select

from events import counts, dlq, syncs
from events.db import EventState, action_runs, attempts, dead_letters, event_tags, events, rule_gates

log = structlog.get_logger()
MIN_PROCESSED_DAYS = 7


def _prune_events(engine: Engine, states: tuple[str, ...], cutoff: datetime, batch: int) -> int:
    total = 0
    while True:
        with engine.begin() as conn:
            ids = [
                r.id
                for r in conn.execute(
                    select(events.c.id)
                    .where(events.c.state.in_(states), events.c.received_at < cutoff)
                    .limit(batch)
                )
            ]
            if not ids:
                return total
            conn.execute(delete(attempts).where(attempts.c.event_id.in_(ids)))
            conn.execute(delete(dead_letters).where(dead_letters.c.event_id.in_(ids)))
            conn.execute(delete(action_runs).where(action_runs.c.event_id.in_(ids)))
            conn.execute(delete(event_tags).where(event_tags.c.event_id.in_(ids)))
            conn.execute(delete(events).where(events.c.id.in_(ids)))
        total += len(ids)


def prune(
    engine: Engine, *, now: datetime, processed_days: float, dead_letter_days: float, batch: int = 1000
) -> dict[str, int]:
    """Dead letters go after `dead_letter_days` (their events stay, purged, for deduplication);
    processed and purged events after `processed_days` (never under the 7-day retry horizon), with
    their action runs and tags; sync history and hourly counters after `processed_days`."""
    with engine.begin() as conn:
        purged = dlq.purge(conn, dlq.Filters(state=None), timedelta(days=dead_letter_days), now=now)
    cutoff = now - timedelta(days=max(processed_days, MIN_PROCESSED_DAYS))
    pruned = {
        "dead_letters": purged,
        "events": _prune_events(engine, (EventState.DONE, EventState.PURGED), cutoff, batch),
    }
    with engine.begin() as conn:  # sync history with processed events, quarantine with dead letters
        pruned |= syncs.prune(
            conn,
            runs_before=now - timedelta(days=processed_days),
            quarantine_before=now - timedelta(days=dead_letter_days),
        )
    with engine.begin() as conn:  # throttle windows nobody has used since (their runs are gone too)
        pruned["rule_gates"] = conn.execute(
            delete(rule_gates).where(rule_gates.c.updated_at < cutoff)
        ).rowcount
    with engine.begin() as conn:  # hourly counters, kept as long as processed events
        pruned["source_counts"] = counts.prune(conn, now - timedelta(days=processed_days))
    log.info("retention.pruned", **pruned)
    return pruned
