"""Leadership: a lease row in the database with a fencing token, so one process of many acts.

Any number of `hookyard beat` processes may run; the one holding the `beat` lease sends the schedule,
the others stand by. The lease is a row (`leases`) on whatever database Hookyard uses, so it holds
with every broker, and it works the same on SQLite:

- `hold()` takes the lease when it is free or has expired (the token grows by one: a new term), or
  renews it when this process holds it; anyone else's live lease is left alone.
- `fence(last_runs)` runs before every send: it renews the lease and writes the schedule's last runs
  only while this process still holds the lease it was given, unexpired. A holder that was paused
  (SIGSTOP, a long GC, a frozen VM) past its expiry finds the row taken or lapsed and sends nothing.
- `release()` ends the lease at once (SIGTERM), so a standby takes over at its next look.

Times come from the injected clock (the machines' clocks must agree to well under the lease, as NTP
keeps them). A database error counts as not holding the lease: a leader that cannot reach the
database stops sending, and its lease lapses for a standby that can.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, case, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from events import metrics
from events.db import dialect_insert, leases, utcnow

log = structlog.get_logger()

BEAT = "beat"  # the lease whose holder sends the beat schedule


def holder_id() -> str:
    """This process, unique across machines and restarts: host:pid:random."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:200]


@dataclass(frozen=True)
class Term:
    """A lease this process holds: its fencing token, when it runs out, the last runs it inherited."""

    token: int
    expires_at: datetime
    last_runs: Mapping[str, float]


class Lease:
    """One named lease as seen by one process (`holder`); `term` is set while it holds it."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        holder: str,
        lease_s: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder
        self.lease = timedelta(seconds=lease_s)
        self.clock = clock
        self.term: Term | None = None

    def hold(self) -> Term | None:
        """Take the lease if it is free or expired, renew it if ours; the term we hold, or None."""
        now = self.clock()
        stmt = dialect_insert(self.engine.dialect.name)(leases).values(
            name=self.name,
            holder=self.holder,
            token=1,
            acquired_at=now,
            expires_at=now + self.lease,
            last_runs={},
        )
        ours = leases.c.holder == stmt.excluded.holder
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "holder": stmt.excluded.holder,
                "token": case((ours, leases.c.token), else_=leases.c.token + 1),
                "acquired_at": case((ours, leases.c.acquired_at), else_=stmt.excluded.acquired_at),
                "expires_at": stmt.excluded.expires_at,
            },
            where=or_(ours, leases.c.expires_at <= now),
        ).returning(leases.c.token, leases.c.expires_at, leases.c.last_runs)
        try:
            with self.engine.begin() as conn:
                row = conn.execute(stmt).first()
        except SQLAlchemyError as exc:
            log.warning("beat.lease_unavailable", lease=self.name, error=repr(exc))
            row = None
        if row is None:
            self._lose()
            return None
        term = Term(int(row.token), row.expires_at, dict(row.last_runs or {}))
        if self.term is None or self.term.token != term.token:
            log.info("beat.leader_acquired", lease=self.name, holder=self.holder, token=term.token)
            metrics.BEAT_LEADERSHIP.labels("acquired").inc()
            metrics.BEAT_LEADING.labels(self.name).set(1)
        self.term = term
        return term

    def fence(self, last_runs: Mapping[str, float]) -> bool:
        """Before a send: renew our lease and store the schedule's last runs, only if the lease we were
        given is still ours and unexpired. False: send nothing (the lease is lost)."""
        if self.term is None:
            return False
        now = self.clock()
        expires = now + self.lease
        try:
            with self.engine.begin() as conn:
                held = conn.execute(
                    update(leases)
                    .where(
                        leases.c.name == self.name,
                        leases.c.holder == self.holder,
                        leases.c.token == self.term.token,
                        leases.c.expires_at > now,
                    )
                    .values(expires_at=expires, last_runs=dict(last_runs))
                ).rowcount
        except SQLAlchemyError as exc:
            log.warning("beat.lease_unavailable", lease=self.name, error=repr(exc))
            held = 0
        if held != 1:
            self._lose()
            return False
        self.term = Term(self.term.token, expires, dict(last_runs))
        return True

    def release(self) -> None:
        """End our lease now (a clean stop), so a standby takes over at its next look."""
        if self.term is None:
            return
        token, self.term = self.term.token, None
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(leases)
                    .where(
                        leases.c.name == self.name, leases.c.holder == self.holder, leases.c.token == token
                    )
                    .values(expires_at=self.clock())
                )
        except SQLAlchemyError as exc:  # it lapses on its own
            log.warning("beat.lease_unavailable", lease=self.name, error=repr(exc))
        log.info("beat.leader_released", lease=self.name, holder=self.holder, token=token)
        metrics.BEAT_LEADERSHIP.labels("released").inc()
        metrics.BEAT_LEADING.labels(self.name).set(0)

    def _lose(self) -> None:
        if self.term is not None:
            log.warning("beat.leader_lost", lease=self.name, holder=self.holder, token=self.term.token)
            metrics.BEAT_LEADERSHIP.labels("lost").inc()
            metrics.BEAT_LEADING.labels(self.name).set(0)
        self.term = None


def current(conn: Connection, now: datetime, name: str = BEAT) -> dict[str, Any] | None:
    """Who holds the lease, for `hookyard status`: holder, token, since, until, and whether it is
    live at `now` (None: never taken)."""
    row = conn.execute(
        select(leases.c.holder, leases.c.token, leases.c.acquired_at, leases.c.expires_at).where(
            leases.c.name == name
        )
    ).first()
    if row is None:
        return None
    return {
        "holder": row.holder,
        "token": row.token,
        "since": row.acquired_at.isoformat(),
        "until": row.expires_at.isoformat(),
        "live": row.expires_at > now,
    }
