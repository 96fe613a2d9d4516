"""The durable inbox, written by group commit.

Concurrent requests hand their rows to `Inbox.add`; a few writer tasks each take whatever is
waiting (up to `batch_max` rows) and store it in one INSERT … ON CONFLICT DO NOTHING RETURNING
transaction. A request is answered only after the transaction holding its rows has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from events.db import dialect_insert, events

log = structlog.get_logger()


@dataclass
class _Pending:
    rows: list[dict[str, Any]]
    done: asyncio.Future[set[str]]


class Inbox:
    def __init__(self, engine: AsyncEngine, *, batch_max: int = 500, writers: int = 2) -> None:
        self._engine = engine
        self._batch_max = batch_max
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writers = writers
        self._tasks: list[asyncio.Task[None]] = []
        self._stmt = (
            dialect_insert(engine.dialect.name)(events)
            .on_conflict_do_nothing(index_elements=["source", "dedupe_key"])
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

    async def add(self, rows: list[dict[str, Any]]) -> set[str]:
        """Store rows; return the ids of those that were new (the rest were duplicates)."""
        done: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(rows, done))
        return await done

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0].rows)
            while size < self._batch_max and not self._queue.empty():
                item = self._queue.get_nowait()
                batch.append(item)
                size += len(item.rows)
            try:
                inserted = await self._write([row for p in batch for row in p.rows])
            except Exception as exc:  # the database is down or refused: every waiter answers 503
                log.warning("inbox.write_failed", error=repr(exc), rows=size)
                for p in batch:
                    if not p.done.done():
                        p.done.set_exception(exc)
                continue
            for p in batch:
                if not p.done.done():
                    p.done.set_result({r["id"] for r in p.rows} & inserted)

    async def _write(self, rows: list[dict[str, Any]]) -> set[str]:
        # rows as executemany parameters: SQLAlchemy's "insertmanyvalues" sends them as one
        # multi-row INSERT … RETURNING per batch from a statement compiled once, instead of
        # compiling a new N-row VALUES clause for every batch size N
        async with self._engine.begin() as conn:
            result = await conn.execute(self._stmt, rows)
            return {row[0] for row in result}
