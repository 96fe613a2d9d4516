"""Publish new event ids to their vendor queues after commit, off the event loop.

A failed publish loses nothing: the event stays `accepted` and the relay republishes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from events import metrics
from events.queue import publish

log = structlog.get_logger()


class Publisher:
    def __init__(
        self,
        send: Callable[[list[tuple[str, str]]], int] = publish,
        batch_max: int = 500,
        linger_s: float = 0.0,
    ) -> None:
        self._send = send
        self._linger_s = linger_s
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._batch_max = batch_max
        self._task: asyncio.Task[None] | None = None

    async def start(self, warm: Callable[[], None] | None = None) -> None:
        if warm is not None:
            try:
                await asyncio.to_thread(warm)
            except Exception as exc:
                log.warning("publish.connect_failed", error=repr(exc), detail="the relay will publish")
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Publish what is waiting (best effort), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._drained(), timeout=5)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _drained(self) -> None:
        while not self._queue.empty():
            await asyncio.sleep(0.01)

    def submit(self, event_id: str, vendor: str) -> None:
        self._queue.put_nowait((event_id, vendor))

    async def _loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._linger_s:  # let a few more ids arrive: several ids per message cost one publish
                await asyncio.sleep(self._linger_s)
            while len(batch) < self._batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await asyncio.to_thread(self._send, batch)
                metrics.PUBLISHED.inc(len(batch))
            except Exception as exc:
                metrics.PUBLISH_FAILURES.inc(len(batch))
                log.warning(
                    "publish.failed",
                    error=repr(exc),
                    events=len(batch),
                    detail="left accepted; the relay will publish them",
                )
