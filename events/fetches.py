"""Event-driven fetches, the asking side: which objects a processed event asks to read whole, and
their rows in `object_fetches`, written in the transaction that marks the event done.

    asks = asks_of(row, sources)          # the connector's subjects that the source's [fetch] wants
    asked = request(conn, asks, now)      # per ask: scheduled, coalesced or skipped

One row per (source, stream, object id). An ask for an object with no fetch pending **schedules**
one, due when the source's coalescing window ends; every other ask within the window is
**coalesced** into it (ten updates to one order, one fetch); an ask that arrives while the fetch
runs makes it go once more after, unless the call read that version. The idempotency key is
(vendor, account = source, object, version): an ask announcing a version no newer than the one the
last fetch read is **skipped**. Nothing here calls the vendor: after the commit, processing sends
each scheduled fetch to the fetch queue to run when due, and workers.fetching claims and runs the
row (a lost message is the sweeper's to send again); a vendor outage only moves `due_at`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import Connection, case, delete, func, or_, select, update

from connectors import registry
from events.db import dialect_insert, object_fetches, text_limit
from events.sources import Source
from schemas.envelope import Envelope

log = structlog.get_logger()

OBJECT_ID_MAX = text_limit(object_fetches, "object_id")


class FetchState(StrEnum):
    PENDING = "pending"  # waits for `due_at`: its window, a backoff, or the breaker's next probe
    RUNNING = "running"  # leased by a worker until `lease_until`
    DONE = "done"  # the object as last read; `fetched_version` keys what is skipped
    FAILED = "failed"  # refused for good (404, 401, attempts used up); a new ask starts again


class Asked(StrEnum):
    SCHEDULED = "scheduled"
    COALESCED = "coalesced"
    SKIPPED = "skipped_stale"


@dataclass(frozen=True)
class Ask:
    source: str
    vendor: str
    stream: str
    object_id: str
    version: datetime | None
    window_s: float

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.source, self.stream, self.object_id)


def asks_of(row: Any, sources: Mapping[str, Source]) -> list[Ask]:
    """The fetches a stored event asks for: its connector's subjects that its source fetches."""
    source = sources.get(row.source)
    if source is None or source.fetch is None:
        return []
    api = registry.get(row.vendor).api
    if api is None or api.subjects is None:
        return []
    asks = []
    for subject in api.subjects(Envelope.from_row(row)):
        if not source.fetch.wants(row.type, subject.stream):
            continue
        if len(subject.object_id) > OBJECT_ID_MAX or "\x00" in subject.object_id:
            log.warning("fetch.bad_object_id", source=row.source, event_id=row.id, stream=subject.stream)
            continue
        asks.append(
            Ask(
                row.source,
                row.vendor,
                subject.stream,
                subject.object_id,
                subject.version,
                source.fetch.window_s,
            )
        )
    return asks


def _row_of(ask: Ask) -> Any:
    c = object_fetches.c
    return (c.source == ask.source, c.stream == ask.stream, c.object_id == ask.object_id)


def request(conn: Connection, asks: Sequence[Ask], now: datetime) -> list[tuple[Ask, Asked, datetime]]:
    """Record the asks (in the caller's transaction); each with how it was taken and the due time of
    its fetch. Rows are taken in key order, so two workers never wait on each other in a circle."""
    insert = dialect_insert(conn.dialect.name)(object_fetches)
    taken: list[tuple[Ask, Asked, datetime]] = []
    for ask in sorted(asks, key=lambda a: a.key):
        due = now + timedelta(seconds=ask.window_s)
        new = conn.execute(
            insert.values(
                source=ask.source,
                stream=ask.stream,
                object_id=ask.object_id,
                vendor=ask.vendor,
                state=FetchState.PENDING,
                due_at=due,
                requests=1,
                first_asked_at=now,
                wanted_version=ask.version,
                queued_at=due,  # settle() sends its message
                attempts=0,
                waits=0,
            )
            .on_conflict_do_nothing()
            .returning(object_fetches.c.source)
        ).first()
        if new is not None:
            taken.append((ask, Asked.SCHEDULED, due))
            continue
        row = conn.execute(select(object_fetches).where(*_row_of(ask)).with_for_update()).one()
        if ask.version is not None and row.fetched_version is not None and ask.version <= row.fetched_version:
            taken.append((ask, Asked.SKIPPED, row.due_at))
            continue
        wanted = _newest(row.wanted_version, ask.version)
        if row.state in (FetchState.PENDING, FetchState.RUNNING):
            conn.execute(
                update(object_fetches)
                .where(*_row_of(ask))
                .values(requests=object_fetches.c.requests + 1, wanted_version=wanted)
            )
            taken.append((ask, Asked.COALESCED, row.due_at))
            continue
        conn.execute(
            update(object_fetches)
            .where(*_row_of(ask))
            .values(
                state=FetchState.PENDING,
                due_at=due,
                requests=1,
                first_asked_at=now,
                wanted_version=ask.version,
                attempts=0,
                waits=0,
                queued_at=due,
                last_error=None,
            )
        )
        taken.append((ask, Asked.SCHEDULED, due))
    return taken


def _newest(held: datetime | None, announced: datetime | None) -> datetime | None:
    """The newer of two announced versions; unknown (None) when the newer ask told none."""
    if announced is None:
        return None
    return announced if held is None else max(held, announced)


NO_FETCHES = {"pending": 0, "waiting": 0, "running": 0, "failed": 0}


def counts(conn: Connection) -> dict[tuple[str, str], dict[str, int]]:
    """Fetches per (source, stream) that are not done: pending, waiting (on the breaker or the
    budget, a subset of pending), running and failed."""
    c = object_fetches.c
    found: dict[tuple[str, str], dict[str, int]] = {}
    waiting = func.sum(case((c.waits > 0, 1), else_=0))
    rows = conn.execute(
        select(c.source, c.stream, c.state, waiting.label("waiting"), func.count().label("n"))
        .where(c.state != FetchState.DONE)
        .group_by(c.source, c.stream, c.state)
    )
    for row in rows:
        seen = found.setdefault((row.source, row.stream), dict(NO_FETCHES))
        seen[row.state] = row.n
        if row.state == FetchState.PENDING:
            seen["waiting"] = int(row.waiting or 0)
    return found


def prune(conn: Connection, *, before: datetime) -> int:
    """Retention: finished fetches not asked for since `before` (their idempotency keys go with them)."""
    c = object_fetches.c
    return conn.execute(
        delete(object_fetches).where(
            c.state.in_((FetchState.DONE, FetchState.FAILED)),
            c.first_asked_at < before,
            or_(c.fetched_at.is_(None), c.fetched_at < before),
        )
    ).rowcount
