"""The durable inbox: it turns verified deliveries into `events` rows, written by group commit.

Concurrent requests hand their deliveries to `Inbox.add`; a few writer tasks each take whatever is
waiting (up to `batch_max` rows) and store it in one INSERT … ON CONFLICT DO NOTHING RETURNING
transaction. A request is answered only after the transaction holding its rows has committed.

Batching is for speed only: every value bound for a column is checked before it joins a batch
(`rows_for`), and a batch the database still refuses for its data is written again one request at a
time, so only the guilty request is refused and its neighbours never see an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from connectors.base import Delivery
from events.db import EventState, dialect_insert, events, text_limit
from events.ids import new_event_id
from schemas.errors import MalformedError

log = structlog.get_logger()

# Errors about the rows themselves (a value the column refuses), not about the database being away.
DATA_ERRORS = (DataError, IntegrityError)


@dataclass(frozen=True)
class Arrival:
    """One verified request: its raw bytes and headers, and the deliveries carved out of it."""

    source: str
    vendor: str
    body: bytes
    headers: Mapping[str, str]
    deliveries: Sequence[Delivery]
    received: float  # unix seconds, the ingress clock
    replay_guard: bool = False  # the body itself is a dedupe key too (see events.sources)


@dataclass(frozen=True)
class Stored:
    """What `Inbox.add` did: the ids of the new events; the rest were duplicates."""

    new: list[str]
    duplicates: int


DEDUPE_KEY_MAX = text_limit(events, "dedupe_key")
TYPE_MAX = text_limit(events, "type")


def _text(value: str, field: str) -> str:
    """A value every database stores as text: no NUL (PostgreSQL refuses it), encodable as UTF-8."""
    if "\x00" in value:
        raise MalformedError(f"{field} contains a NUL character", code=f"invalid_{field}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedError(f"{field} is not valid UTF-8 text", code=f"invalid_{field}") from None
    return value


def dedupe_key(value: str) -> str:
    """The key as stored: an over-long key becomes its SHA-256, so the same delivery still dedupes."""
    value = _text(value, "dedupe_key")
    if len(value) > DEDUPE_KEY_MAX:
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return value


def event_type(value: str) -> str:
    value = _text(value, "type")
    if len(value) > TYPE_MAX:
        raise MalformedError(
            f"event type of {len(value)} characters; at most {TYPE_MAX}", code="invalid_type"
        )
    return value


def rows_for(arrival: Arrival, relay_grace_s: float) -> list[dict[str, Any]]:
    """The `events` rows of an arrival, every value checked against its column (MalformedError: 400)."""
    received = datetime.fromtimestamp(arrival.received, UTC)
    relay_at = received + timedelta(seconds=relay_grace_s)
    headers = {_text(k, "header"): _text(v, "header") for k, v in arrival.headers.items()}
    body_hash = hashlib.sha256(arrival.body).hexdigest() if arrival.replay_guard else None
    return [
        {
            "id": new_event_id(arrival.received),
            "source": arrival.source,
            "vendor": arrival.vendor,
            "type": event_type(d.type),
            "dedupe_key": dedupe_key(d.dedupe_key),
            "state": EventState.ACCEPTED,
            "attempts": 0,
            "received_at": received,
            "occurred_at": d.occurred_at,
            "available_at": received,
            "relay_at": relay_at,
            "relayed": 0,
            "headers": headers,
            "body": arrival.body,
            "payload": d.payload,
            "body_key": None if body_hash is None else f"{body_hash}:{position}",
        }
        for position, d in enumerate(arrival.deliveries)
    ]


@dataclass
class _Pending:
    rows: list[dict[str, Any]]
    done: asyncio.Future[set[str]]


class Inbox:
    def __init__(
        self, engine: AsyncEngine, *, batch_max: int = 500, writers: int = 2, relay_grace_s: float = 30.0
    ) -> None:
        self._engine = engine
        self._batch_max = batch_max
        self._relay_grace_s = relay_grace_s
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writers = writers
        self._tasks: list[asyncio.Task[None]] = []
        self._stmt = (
            dialect_insert(engine.dialect.name)(events)
            .on_conflict_do_nothing()  # any unique key: (source, dedupe_key) or (source, body_key)
            .returning(events.c.id)
        )

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write_loop()) for _ in range(self._writers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def pending(self) -> int:
        """Requests waiting for a transaction: the ingress sheds load when this grows too long."""
        return self._queue.qsize()

    async def add(self, arrival: Arrival) -> Stored:
        """Store an arrival's events once committed; MalformedError when a value cannot be stored."""
        rows = rows_for(arrival, self._relay_grace_s)
        if not rows:
            return Stored([], 0)
        done: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(rows, done))
        inserted = await done
        new = [r["id"] for r in rows if r["id"] in inserted]
        return Stored(new, len(rows) - len(new))

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0].rows)
            while size < self._batch_max and not self._queue.empty():
                item = self._queue.get_nowait()
                batch.append(item)
                size += len(item.rows)
            await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            inserted = await self._write([row for p in batch for row in p.rows])
        except DATA_ERRORS as exc:
            if len(batch) == 1:
                self._refuse(batch[0], exc)
            else:  # someone's data was refused: write each request alone, so only the guilty one fails
                log.warning("inbox.batch_refused", error=repr(exc), requests=len(batch))
                for pending in batch:
                    await self._commit([pending])
            return
        except Exception as exc:  # the database is down or overloaded: every waiter answers 503
            log.warning("inbox.write_failed", error=repr(exc), rows=sum(len(p.rows) for p in batch))
            for p in batch:
                if not p.done.done():
                    p.done.set_exception(exc)
            return
        for p in batch:
            if not p.done.done():
                p.done.set_result({r["id"] for r in p.rows} & inserted)

    @staticmethod
    def _refuse(pending: _Pending, exc: DBAPIError) -> None:
        if not pending.done.done():
            reason = (str(exc.orig).splitlines() or ["no reason given"])[0][:300]
            pending.done.set_exception(
                MalformedError(f"the database refused this delivery's data: {reason}", code="unstorable")
            )

    async def _write(self, rows: list[dict[str, Any]]) -> set[str]:
        # rows as executemany parameters: SQLAlchemy's "insertmanyvalues" sends them as one
        # multi-row INSERT … RETURNING per batch from a statement compiled once, instead of
        # compiling a new N-row VALUES clause for every batch size N
        async with self._engine.begin() as conn:
            result = await conn.execute(self._stmt, rows)
            return {row[0] for row in result}
