"""Counters per source and UTC hour in the database (`source_counts`), written in batches.

Processes count in memory (`connectors.usage.Tally`) and a `Flusher` thread adds what they counted
to the table every few seconds with one INSERT … ON CONFLICT DO UPDATE (count = count + n), so the
hot paths never wait for the database and every process's counts add up, on any machine:

    vendor_calls   vendor API calls (connectors.http), per source: the daily quota
    refused        deliveries refused because their signature did not verify (events.ingress),
                   per source: a wrong secret turns the source's health red

A flush that fails puts its counts back for the next one; what a process counted in its last
seconds before a SIGKILL is lost (these are operational counts, not events).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import Connection, Engine, delete, func, select

from connectors.usage import CALLS, HOUR_S, Tally
from events.db import dialect_insert, source_counts

log = structlog.get_logger()

VENDOR_CALLS = "vendor_calls"
REFUSED = "refused"
REFUSALS = Tally()  # the ingress's refusals by source
TALLIES: dict[str, Tally] = {VENDOR_CALLS: CALLS, REFUSED: REFUSALS}
FLUSH_S = 5.0


def _hour(unix_hours: int) -> datetime:
    return datetime.fromtimestamp(unix_hours * HOUR_S, UTC)


def add(conn: Connection, name: str, counts: Mapping[tuple[str, int], int]) -> None:
    """Add counts ((source, unix hour) → n) to the table in one statement."""
    if not counts:
        return
    stmt = dialect_insert(conn.dialect.name)(source_counts)
    stmt = stmt.on_conflict_do_update(
        index_elements=["source", "name", "hour"],
        set_={"count": source_counts.c.count + stmt.excluded["count"]},
    )
    conn.execute(
        stmt,
        [
            {"source": source, "name": name, "hour": _hour(hour), "count": n}
            for (source, hour), n in sorted(counts.items())
        ],
    )


def flush(engine: Engine, tallies: Mapping[str, Tally] = TALLIES) -> int:
    """Write every tally's counts in one transaction; on failure they go back for the next flush."""
    drained = {name: tally.drain() for name, tally in tallies.items()}
    total = sum(sum(counts.values()) for counts in drained.values())
    if not total:
        return 0
    try:
        with engine.begin() as conn:
            for name, counts in drained.items():
                add(conn, name, counts)
    except Exception as exc:
        for name, counts in drained.items():
            tallies[name].restore(counts)
        log.warning("counts.flush_failed", error=repr(exc), pending=total)
        return 0
    return total


class Flusher:
    """A daemon thread that flushes the tallies every `interval_s`, and once more when stopped."""

    def __init__(self, engine: Engine, interval_s: float = FLUSH_S) -> None:
        self._engine = engine
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="counts-flusher", daemon=True)

    def start(self) -> Flusher:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            flush(self._engine)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        flush(self._engine)


def totals(conn: Connection, name: str, since: datetime, until: datetime | None = None) -> dict[str, int]:
    """source → the sum of the hours in [since, until)."""
    stmt = (
        select(source_counts.c.source, func.sum(source_counts.c.count))
        .where(source_counts.c.name == name, source_counts.c.hour >= since)
        .group_by(source_counts.c.source)
    )
    if until is not None:
        stmt = stmt.where(source_counts.c.hour < until)
    return {source: int(n or 0) for source, n in conn.execute(stmt)}


def hourly(conn: Connection, name: str, hours: Iterable[datetime]) -> dict[tuple[str, datetime], int]:
    """(source, hour) → count for the given UTC hours."""
    wanted = sorted(set(hours))
    if not wanted:
        return {}
    stmt = select(source_counts.c.source, source_counts.c.hour, source_counts.c.count).where(
        source_counts.c.name == name,
        source_counts.c.hour >= wanted[0],
        source_counts.c.hour <= wanted[-1],
    )
    keep = set(wanted)
    return {(s, h): int(n) for s, h, n in conn.execute(stmt) if h in keep}


def prune(conn: Connection, before: datetime) -> int:
    """Forget the hours before `before` (the longest window read is a day: keep far more)."""
    return conn.execute(delete(source_counts).where(source_counts.c.hour < before)).rowcount


def window_total(conn: Connection, name: str, source: str, now: datetime, window_s: float) -> float:
    """An estimate of the count in [now − window_s, now) from hourly buckets (the oldest bucket
    counted in proportion to its part inside the window)."""
    start = now - timedelta(seconds=window_s)
    first = start.replace(minute=0, second=0, microsecond=0)
    rows = conn.execute(
        select(source_counts.c.hour, source_counts.c.count).where(
            source_counts.c.name == name, source_counts.c.source == source, source_counts.c.hour >= first
        )
    )
    total = 0.0
    for hour, count in rows:
        inside = (min(hour + timedelta(hours=1), now) - max(hour, start)).total_seconds()
        span = (min(hour + timedelta(hours=1), now) - hour).total_seconds()
        if span > 0 and inside > 0:
            total += count * inside / span
    return total
