"""Retention keeps what is young or unfinished and prunes the rest."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, insert, select

from connectors.usage import HOUR_S
from events import counts
from events.db import dead_letters, events, utcnow
from events.ids import new_event_id
from workers.retention import prune


def add(engine: Engine, state: str, age_days: float, dead: bool = False) -> str:
    when = utcnow() - timedelta(days=age_days)
    event_id = new_event_id(when.timestamp())
    with engine.begin() as conn:
        conn.execute(
            insert(events).values(
                id=event_id,
                source="s",
                vendor="shopify",
                type="t",
                dedupe_key=event_id,
                state=state,
                attempts=1,
                received_at=when,
                available_at=when,
                relay_at=when,
                relayed=0,
                headers={},
                body=b"{}",
            )
        )
        if dead:
            conn.execute(
                insert(dead_letters).values(
                    event_id=event_id,
                    source="s",
                    vendor="shopify",
                    type="t",
                    task="x",
                    args=[event_id],
                    error_class="E",
                    error_message="m",
                    attempts=1,
                    died_at=when,
                    state="dead",
                    replays=0,
                )
            )
    return event_id


def test_prunes_old_processed_and_old_dead_letters_only(engine: Engine) -> None:
    """Old done events go; young ones, unfinished ones and young dead letters stay; old dead
    letters go while their event stays, purged, so a late redelivery is still a duplicate."""
    old_done, young_done = add(engine, "done", 40), add(engine, "done", 3)
    old_retry = add(engine, "retry", 40)
    old_dead, young_dead = add(engine, "dead", 100, dead=True), add(engine, "dead", 10, dead=True)
    result = prune(engine, now=utcnow(), processed_days=30, dead_letter_days=90)
    with engine.connect() as conn:
        states = dict(conn.execute(select(events.c.id, events.c.state)).all())
        letters = {r for (r,) in conn.execute(select(dead_letters.c.event_id))}
    assert old_done not in states and states[young_done] == "done"
    assert states[old_retry] == "retry"
    assert letters == {young_dead}
    # the old dead event was purged, and being over 30 days old it was then pruned as well
    assert old_dead not in states and states[young_dead] == "dead"
    assert result == {
        "dead_letters": 1,
        "events": 2,
        "sync_runs": 0,
        "quarantine": 0,
        "rule_gates": 0,
        "source_counts": 0,
    }


def test_processed_events_outlive_the_longest_vendor_retry_horizon(engine: Engine) -> None:
    """A retention set below 7 days is raised to 7: WhatsApp redelivers for a week."""
    five_days = add(engine, "done", 5)
    prune(engine, now=utcnow(), processed_days=1, dead_letter_days=90)
    with engine.connect() as conn:
        assert conn.execute(select(events.c.id)).scalar_one() == five_days


def test_hourly_counters_go_with_processed_events(engine: Engine) -> None:
    """source_counts hours older than the processed retention are pruned; recent hours stay."""
    now = utcnow()
    with engine.begin() as conn:
        hours = {("s", int((now - timedelta(days=d)).timestamp() // HOUR_S)): 5 for d in (1, 31, 40)}
        counts.add(conn, counts.VENDOR_CALLS, hours)
    result = prune(engine, now=now, processed_days=30, dead_letter_days=90)
    with engine.connect() as conn:
        assert counts.totals(conn, counts.VENDOR_CALLS, now - timedelta(days=60)) == {"s": 5}
    assert result["source_counts"] == 2
