"""Process one stored event exactly once in effect.

claim (lease + fencing token) → normalize through the connector → in ONE transaction: check the
token still holds, upsert the records, mark the event done. A second delivery of the same id finds
the event leased or done and does nothing; a worker that dies mid-way leaves a lease that expires,
and the relay re-drives the event.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
import structlog
from sqlalchemy import Connection, Engine, and_, or_, select, update

from connectors import registry
from events.db import ACCEPTED, DEAD, DONE, PROCESSING, RETRY, dialect_insert, events, records, utcnow
from schemas.envelope import Envelope
from schemas.records import Record

log = structlog.get_logger()

MAX_ATTEMPTS = 8


class Outcome(StrEnum):
    DONE = "done"
    SKIPPED = "skipped"  # not claimable: done, dead, or leased by another worker
    LOST_LEASE = "lost_lease"  # our lease expired and another worker took over
    RETRY = "retry"
    DEAD = "dead"


def claim(conn: Connection, event_id: str, token: str, now: datetime, lease_s: float) -> Any:
    """Take the lease on a claimable event; return its row, or None."""
    expires = now + timedelta(seconds=lease_s)
    stmt = (
        update(events)
        .where(events.c.id == event_id)
        .where(or_(events.c.state == ACCEPTED,
                   and_(events.c.state.in_((RETRY, PROCESSING)), events.c.available_at <= now)))
        .values(state=PROCESSING, lease_token=token, attempts=events.c.attempts + 1,
                available_at=expires, relay_at=expires)
        .returning(*events.c)
    )
    return conn.execute(stmt).first()


def envelope_of(row: Any) -> Envelope:
    payload = row.payload if row.payload is not None else orjson.loads(row.body)
    return Envelope(id=row.id, source=row.source, vendor=row.vendor, type=row.type,
                    dedupe_key=row.dedupe_key, occurred_at=row.occurred_at,
                    received_at=row.received_at, headers=row.headers, payload=payload)


def upsert_records(conn: Connection, vendor: str, event_id: str, items: Sequence[Record]) -> None:
    """Insert or update records; an older vendor timestamp never overwrites a newer one."""
    insert = dialect_insert(conn.dialect.name)
    for record in items:
        stmt = insert(records).values(vendor=vendor, kind=record.kind, external_id=record.external_id,
                                      data=record.data(), updated_at=record.updated_at,
                                      event_id=event_id, version=1)
        stmt = stmt.on_conflict_do_update(
            index_elements=["vendor", "kind", "external_id"],
            set_={"data": stmt.excluded.data, "updated_at": stmt.excluded.updated_at,
                  "event_id": stmt.excluded.event_id, "version": records.c.version + 1},
            where=or_(records.c.updated_at.is_(None), stmt.excluded.updated_at.is_(None),
                      stmt.excluded.updated_at >= records.c.updated_at),
        )
        conn.execute(stmt)


def finish(conn: Connection, event_id: str, token: str, now: datetime) -> bool:
    """Mark done if our lease still holds (the row lock also fences late claimers)."""
    result = conn.execute(
        update(events)
        .where(events.c.id == event_id, events.c.lease_token == token, events.c.state == PROCESSING)
        .values(state=DONE, processed_at=now, lease_token=None, last_error=None)
    )
    return result.rowcount == 1


def fail(engine: Engine, event_id: str, token: str, error: Exception, attempts: int) -> Outcome:
    """Record the failure: retry later with backoff, or dead-letter after MAX_ATTEMPTS."""
    now = utcnow()
    dead = attempts >= MAX_ATTEMPTS
    due = now + timedelta(seconds=min(2 ** attempts, 600))
    with engine.begin() as conn:
        conn.execute(
            update(events)
            .where(events.c.id == event_id, events.c.lease_token == token)
            .values(state=DEAD if dead else RETRY, lease_token=None, available_at=due, relay_at=due,
                    last_error=f"{type(error).__name__}: {error}"[:4000])
        )
    return Outcome.DEAD if dead else Outcome.RETRY


def process(engine: Engine, event_id: str, *, lease_s: float, fault_delay_s: float = 0.0) -> Outcome:
    token = uuid.uuid4().hex
    with engine.begin() as conn:
        row = claim(conn, event_id, token, utcnow(), lease_s)
    if row is None:
        return Outcome.SKIPPED
    structlog.contextvars.bind_contextvars(event_id=event_id, source=row.source, attempt=row.attempts)
    try:
        items = registry.get(row.vendor).normalize(envelope_of(row))
        if fault_delay_s:
            time.sleep(fault_delay_s)
        with engine.begin() as conn:
            if not finish(conn, event_id, token, utcnow()):
                conn.rollback()
                log.warning("event.lease_lost")
                return Outcome.LOST_LEASE
            upsert_records(conn, row.vendor, event_id, items)
    except Exception as exc:
        outcome = fail(engine, event_id, token, exc, row.attempts)
        log.warning("event.failed", error=repr(exc), outcome=str(outcome))
        return outcome
    log.info("event.processed", type=row.type, records=len(items))
    return Outcome.DONE


def due_for_relay(conn: Connection, now: datetime, limit: int) -> list[Any]:
    stmt = (select(events.c.id, events.c.vendor, events.c.relayed)
            .where(events.c.state.in_((ACCEPTED, RETRY, PROCESSING)), events.c.relay_at <= now)
            .order_by(events.c.relay_at).limit(limit))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(conn.execute(stmt))
