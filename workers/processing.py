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
from functools import cache
from typing import Any

import orjson
import structlog
from sqlalchemy import Connection, Engine, and_, bindparam, or_, select, update

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


# The per-event statements are built once: constructing SQLAlchemy Core statements per call cost
# more CPU than executing them (see BENCHMARKS.md, worker profile).
_CLAIM = (
    update(events)
    .where(events.c.id == bindparam("b_id"))
    .where(or_(events.c.state == ACCEPTED,
               and_(events.c.state.in_((RETRY, PROCESSING)),
                    events.c.available_at <= bindparam("b_now", type_=events.c.available_at.type))))
    .values(state=PROCESSING, lease_token=bindparam("b_token"), attempts=events.c.attempts + 1,
            available_at=bindparam("b_expires", type_=events.c.available_at.type),
            relay_at=bindparam("b_expires", type_=events.c.relay_at.type))
    .returning(*events.c)
)
_FINISH = (
    update(events)
    .where(events.c.id == bindparam("b_id"), events.c.lease_token == bindparam("b_token"),
           events.c.state == PROCESSING)
    .values(state=DONE, processed_at=bindparam("b_now", type_=events.c.processed_at.type),
            lease_token=None, last_error=None)
)


@cache
def _upsert(dialect_name: str) -> Any:
    """INSERT … ON CONFLICT DO UPDATE for records; an older vendor timestamp never wins."""
    stmt = dialect_insert(dialect_name)(records)
    return stmt.on_conflict_do_update(
        index_elements=["vendor", "kind", "external_id"],
        set_={"data": stmt.excluded.data, "updated_at": stmt.excluded.updated_at,
              "event_id": stmt.excluded.event_id, "version": records.c.version + 1},
        where=or_(records.c.updated_at.is_(None), stmt.excluded.updated_at.is_(None),
                  stmt.excluded.updated_at >= records.c.updated_at),
    )


def claim(conn: Connection, event_id: str, token: str, now: datetime, lease_s: float) -> Any:
    """Take the lease on a claimable event; return its row, or None."""
    expires = now + timedelta(seconds=lease_s)
    return conn.execute(_CLAIM, {"b_id": event_id, "b_now": now, "b_token": token,
                                 "b_expires": expires}).first()


def envelope_of(row: Any) -> Envelope:
    payload = row.payload if row.payload is not None else orjson.loads(row.body)
    return Envelope(id=row.id, source=row.source, vendor=row.vendor, type=row.type,
                    dedupe_key=row.dedupe_key, occurred_at=row.occurred_at,
                    received_at=row.received_at, headers=row.headers, payload=payload)


def upsert_records(conn: Connection, vendor: str, event_id: str, items: Sequence[Record]) -> None:
    """Insert or update records; an older vendor timestamp never overwrites a newer one.

    One executemany (psycopg pipelines it: one round trip), statements applied in order, so two
    items with the same key behave exactly as two upserts in a row."""
    if not items:
        return
    params = [{"vendor": vendor, "kind": r.kind, "external_id": r.external_id, "data": r.data(),
               "updated_at": r.updated_at, "event_id": event_id, "version": 1} for r in items]
    conn.execute(_upsert(conn.dialect.name), params)


def finish(conn: Connection, event_id: str, token: str, now: datetime) -> bool:
    """Mark done if our lease still holds (the row lock also fences late claimers)."""
    result = conn.execute(_FINISH, {"b_id": event_id, "b_token": token, "b_now": now})
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
    with engine.connect() as conn:  # one checkout (one pool pre-ping) for both transactions
        with conn.begin():
            row = claim(conn, event_id, token, utcnow(), lease_s)
        if row is None:
            return Outcome.SKIPPED
        structlog.contextvars.bind_contextvars(event_id=event_id, source=row.source, attempt=row.attempts)
        try:
            return _apply(conn, row, token, fault_delay_s)
        except Exception as exc:
            error = exc
    outcome = fail(engine, event_id, token, error, row.attempts)  # on a fresh connection
    log.warning("event.failed", error=repr(error), outcome=str(outcome))
    return outcome


def _apply(conn: Connection, row: Any, token: str, fault_delay_s: float) -> Outcome:
    """Normalize, then in one transaction: fence on our lease, upsert the records, mark done."""
    items = registry.get(row.vendor).normalize(envelope_of(row))
    if fault_delay_s:
        time.sleep(fault_delay_s)
    with conn.begin() as tx:
        if not finish(conn, row.id, token, utcnow()):
            tx.rollback()
            log.warning("event.lease_lost")
            return Outcome.LOST_LEASE
        upsert_records(conn, row.vendor, row.id, items)
    log.info("event.processed", type=row.type, records=len(items))
    return Outcome.DONE


def due_for_relay(conn: Connection, now: datetime, limit: int) -> list[Any]:
    stmt = (select(events.c.id, events.c.vendor, events.c.relayed)
            .where(events.c.state.in_((ACCEPTED, RETRY, PROCESSING)), events.c.relay_at <= now)
            .order_by(events.c.relay_at).limit(limit))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(conn.execute(stmt))
