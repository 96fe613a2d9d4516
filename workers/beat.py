"""Celery beat's scheduler, sending only while this process holds the beat lease (`events.leader`).

Run as many `hookyard beat` (or `worker --beat`) as you like: each ticks, one leads. Before every
send the leader fences on its lease, renewing it and writing the schedule's last runs in one
statement, so a leader paused past its lease sends nothing when it wakes. A standby looks every
lease_s / 4; once it holds the lease it goes on from the last runs the previous leader wrote, so an
entry is not sent again before its interval is up. The schedule's state lives in the lease row, not
in a local file. On SIGTERM Celery closes the scheduler, which releases the lease: a standby takes
over at its next look.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from celery.beat import ScheduleEntry, Scheduler
from celery.signals import beat_embedded_init

from events.db import make_engine
from events.leader import BEAT, Lease, holder_id
from events.multiprocess import mark_dead, own_files_in_child
from events.settings import get_settings

log = structlog.get_logger()


class LeaderScheduler(Scheduler):  # type: ignore[misc]  # Celery is untyped
    """Celery builds it with its own arguments; tests pass a `lease` and a `monotonic` clock."""

    def __init__(
        self,
        app: Any,
        *args: Any,
        lease: Lease | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        if lease is None:
            settings = get_settings()
            engine = make_engine(settings.database_url.get_secret_value())
            lease = Lease(engine, BEAT, holder_id(), settings.beat.lease_s)
        self.lease = lease
        self.look_s = lease.lease.total_seconds() / 4
        self.monotonic = monotonic
        self._looked = float("-inf")
        super().__init__(app, *args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Look at the lease every look_s (take it, renew it, or find it lost); tick only while leading."""
        if self.monotonic() - self._looked >= self.look_s:
            self._look()
        if self.lease.term is None:
            return self.look_s
        return float(min(super().tick(*args, **kwargs), self.look_s))

    def _look(self) -> None:
        before = self.lease.term
        term = self.lease.hold()
        self._looked = self.monotonic()
        if term is not None and (before is None or before.token != term.token):
            self._inherit(term.last_runs)

    def _inherit(self, last_runs: Mapping[str, float]) -> None:
        """A new term: go on from the last runs the lease row holds (written by whoever led before)."""
        for name, entry in self.schedule.items():
            if name in last_runs:
                entry.last_run_at = datetime.fromtimestamp(last_runs[name], UTC)
        self._heap = None  # rebuilt from these times at the next tick

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        """Send only after the fence holds; the entry's new last run is stored with it."""
        runs = {name: e.last_run_at.timestamp() for name, e in self.schedule.items()}
        if not self.lease.fence(runs):
            log.warning("beat.not_sent", entry=entry.name, reason="lease_lost")
            return
        self._looked = self.monotonic()
        log.info(
            "beat.sent",
            entry=entry.name,
            task=entry.task,
            last_run=runs[entry.name],
            token=self.lease.term.token if self.lease.term else None,
            holder=self.lease.holder,
        )
        super().apply_entry(entry, producer)

    def close(self) -> None:
        """SIGTERM or a clean stop: give the lease up at once, so a standby need not wait it out."""
        self.lease.release()
        mark_dead(os.getpid())
        super().close()


@beat_embedded_init.connect
def _embedded(**_: object) -> None:
    """`worker --beat` runs beat in a child process that closes the descriptors it inherited, the
    worker's metric files among them: the lease metrics get files of their own. The worker stops
    that child with SIGTERM: end its loop the way a standalone beat ends, releasing the lease."""
    own_files_in_child()
    signal.signal(signal.SIGTERM, _exit)


def _exit(*_: object) -> None:
    raise SystemExit  # Celery's beat loop closes the scheduler on its way out
