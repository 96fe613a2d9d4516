"""Claiming, fencing and record upserts on a real (SQLite) database, without a broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, insert, select

from events.db import ACCEPTED, events, make_engine, records, utcnow
from events.ids import new_event_id
from events.migrate import upgrade
from schemas.records import Customer
from workers import processing
from workers.processing import Outcome


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path}/p.db"
    upgrade(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()


def add_event(engine: Engine, payload: dict[str, Any], **overrides: Any) -> str:
    now = utcnow()
    row = {"id": new_event_id(now.timestamp()), "source": "shop", "vendor": "shopify",
           "type": "order.created", "dedupe_key": new_event_id(0), "state": ACCEPTED, "attempts": 0,
           "received_at": now, "available_at": now, "relay_at": now, "relayed": 0,
           "headers": {}, "body": orjson.dumps(payload), **overrides}
    with engine.begin() as conn:
        conn.execute(insert(events).values(row))
    return row["id"]


ORDER = {"id": 1, "currency": "EUR", "total_price": "10.00", "updated_at": "2026-01-01T00:00:00Z",
         "customer": {"id": 7, "email": "a@example.com", "updated_at": "2026-01-01T00:00:00Z"}}


def event_row(engine: Engine, event_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(events).where(events.c.id == event_id)).one()


def test_process_twice_applies_once(engine: Engine) -> None:
    """A second delivery of a finished event is skipped: records keep version 1."""
    event_id = add_event(engine, ORDER)
    assert processing.process(engine, event_id, lease_s=30) == Outcome.DONE
    assert processing.process(engine, event_id, lease_s=30) == Outcome.SKIPPED
    with engine.connect() as conn:
        assert sorted(v for (v,) in conn.execute(select(records.c.version))) == [1, 1]
    assert event_row(engine, event_id).state == "done"


def test_a_live_lease_blocks_a_second_claim(engine: Engine) -> None:
    """While one worker holds the lease, another delivery of the same id cannot claim it."""
    event_id = add_event(engine, ORDER)
    with engine.begin() as conn:
        assert processing.claim(conn, event_id, "a", utcnow(), 60) is not None
    with engine.begin() as conn:
        assert processing.claim(conn, event_id, "b", utcnow(), 60) is None


def test_expired_lease_is_taken_over_and_the_old_holder_is_fenced(engine: Engine) -> None:
    """After a lease expires another worker claims; the first cannot finish with its stale token."""
    event_id = add_event(engine, ORDER)
    start = utcnow()
    with engine.begin() as conn:
        assert processing.claim(conn, event_id, "old", start, 1) is not None
    with engine.begin() as conn:
        assert processing.claim(conn, event_id, "new", start + timedelta(seconds=2), 60) is not None
    with engine.begin() as conn:
        assert processing.finish(conn, event_id, "old", utcnow()) is False
    with engine.begin() as conn:
        assert processing.finish(conn, event_id, "new", utcnow()) is True
    row = event_row(engine, event_id)
    assert (row.state, row.attempts) == ("done", 2)


def test_an_older_update_never_overwrites_a_newer_record(engine: Engine) -> None:
    """Out-of-order deliveries: the vendor's newer timestamp wins whatever the arrival order."""
    newer = Customer(external_id="7", email="new@example.com", updated_at=datetime(2026, 2, 1, tzinfo=UTC))
    older = Customer(external_id="7", email="old@example.com", updated_at=datetime(2026, 1, 1, tzinfo=UTC))
    with engine.begin() as conn:
        processing.upsert_records(conn, "shopify", "e1", [newer])
        processing.upsert_records(conn, "shopify", "e2", [older])
    with engine.connect() as conn:
        row = conn.execute(select(records)).one()
    assert (row.data["email"], row.event_id, row.version) == ("new@example.com", "e1", 1)


def test_a_failing_event_is_scheduled_for_retry_with_its_error(engine: Engine) -> None:
    """A body that cannot be normalized is not lost: it waits in state retry with the error kept."""
    event_id = add_event(engine, ORDER, body=b"{not json")
    assert processing.process(engine, event_id, lease_s=30) == Outcome.RETRY
    row = event_row(engine, event_id)
    assert row.state == "retry"
    assert row.last_error.startswith("JSONDecodeError")
    assert row.available_at > utcnow()


def test_relay_selects_only_unfinished_due_events(engine: Engine) -> None:
    """Done events and events not yet due are left alone by the relay query."""
    now = utcnow()
    due = add_event(engine, ORDER, relay_at=now - timedelta(seconds=1))
    add_event(engine, ORDER, relay_at=now + timedelta(seconds=60))
    add_event(engine, ORDER, relay_at=now - timedelta(seconds=1), state="done")
    with engine.connect() as conn:
        assert [r.id for r in processing.due_for_relay(conn, now, 100)] == [due]
