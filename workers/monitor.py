"""The monitor job (beat, every `HOOKYARD_MONITOR__INTERVAL_S`): judge every configured source.

For each source, in one transaction: read what the database says about it (`observe`), judge it
(`events.monitoring.judge`), store the new state with a compare-and-set on the evaluation slot
(unix time // interval), and insert the alert events its transitions raise. A second run of the same
slot (a duplicate beat fire, two beats) finds the slot taken and does nothing; a restart resumes from
the stored state, so nothing is alerted twice. The alert events are published after the commit
(the relay publishes them if that fails).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, and_, func, select, update

from connectors.internal import INTERNAL_SOURCE
from events import alerts, counts, metrics
from events.db import AttemptOutcome, attempts, dead_letters, dialect_insert, events, monitor_state
from events.health.anomaly import Counts
from events.health.quota import hour_start
from events.health.score import SourceWindow
from events.health.stats import quantile
from events.monitoring import Observed, decode, encode, judge
from events.sources import Source

log = structlog.get_logger()

HOUR = timedelta(hours=1)
HISTORY = timedelta(days=14)  # how far back a new source's baseline starts learning
LEARN_PER_RUN = 48  # finished hours learned per run (a long catch-up spreads over several runs)
FAILED = (AttemptOutcome.RETRY, AttemptOutcome.DEAD, AttemptOutcome.LEASE_EXPIRED)


def run(
    engine: Engine,
    sources: Mapping[str, Source],
    now: datetime,
    *,
    interval_s: float,
    window_s: float,
    relay_grace_s: float,
) -> list[tuple[str, str]]:
    """Judge every source once for this slot; (event id, vendor) of the alert events to publish."""
    slot = int(now.timestamp() // interval_s)
    raised: list[tuple[str, str]] = []
    for source in sources.values():
        try:
            ids = _judge_one(engine, source, now, slot, window_s, relay_grace_s)
        except Exception as exc:
            metrics.MONITOR_RUNS.labels("failed").inc()
            log.exception("monitor.failed", source=source.name, error=repr(exc))
            continue
        raised += [(event_id, INTERNAL_SOURCE) for event_id in ids or ()]
    return raised


def _judge_one(
    engine: Engine, source: Source, now: datetime, slot: int, window_s: float, relay_grace_s: float
) -> list[str] | None:
    with engine.begin() as conn:
        first = dialect_insert(conn.dialect.name)(monitor_state).values(
            source=source.name, slot=-1, evaluated_at=now, state={}
        )
        conn.execute(first.on_conflict_do_nothing())
        row = conn.execute(select(monitor_state).where(monitor_state.c.source == source.name)).one()
        if row.slot >= slot:
            metrics.MONITOR_RUNS.labels("skipped").inc()
            return None
        observed, last_event_at, learned_until = observe(conn, source, row, now, window_s)
        state, found = judge(decode(row.state), observed, source, now)
        moved = conn.execute(
            update(monitor_state)
            .where(monitor_state.c.source == source.name, monitor_state.c.slot == row.slot)
            .values(
                slot=slot,
                evaluated_at=now,
                last_event_at=last_event_at,
                learned_until=learned_until,
                state=encode(state),
            )
        ).rowcount
        if moved != 1:  # another run took this slot meanwhile
            conn.rollback()
            metrics.MONITOR_RUNS.labels("skipped").inc()
            return None
        ids = alerts.insert(conn, found, relay_grace_s)
    metrics.MONITOR_RUNS.labels("evaluated").inc()
    alerts.announce(found)
    return ids


def observe(
    conn: Connection, source: Source, row: Any, now: datetime, window_s: float
) -> tuple[Observed, datetime | None, datetime]:
    """What the database says about `source`; also the new last-event time and learned-until hour."""
    name = source.name
    since = now - timedelta(seconds=window_s)
    last = _last_event(conn, name, row.last_event_at)
    done, failed = _attempts(conn, name, since, now)
    p95_ms, _ = _processing_p95(conn, name, since)
    window = SourceWindow(
        attempts_ok=done,
        attempts_failed=failed,
        events=_events(conn, name, since, now),
        dead_letters=conn.execute(
            select(func.count())
            .select_from(dead_letters)
            .where(dead_letters.c.source == name, dead_letters.c.died_at >= since)
        ).scalar_one(),
        refused=counts.window_total(conn, counts.REFUSED, name, now, window_s),
        p95_processing_s=None if p95_ms is None else p95_ms / 1000.0,
        last_event_at=last,
    )
    e2e, samples = None, 0
    latency = source.sla.latency_target() if source.sla else None
    if latency is not None and source.sla is not None:
        e2e, samples = _end_to_end_p95(conn, name, now - timedelta(seconds=source.sla.latency_window))
    anomaly_since = now - timedelta(seconds=source.anomaly.window)
    ok, bad = _attempts(conn, name, anomaly_since, now)
    anomaly_window = Counts(events=_events(conn, name, anomaly_since, now), attempts=ok + bad, failures=bad)
    learned = row.learned_until or _first_hour(conn, name, now)
    hours: list[tuple[datetime, Counts]] = []
    while learned + HOUR <= now and len(hours) < LEARN_PER_RUN and source.anomaly.enabled:
        ok, bad = _attempts(conn, name, learned, learned + HOUR)
        hours.append((learned, Counts(_events(conn, name, learned, learned + HOUR), ok + bad, bad)))
        learned += HOUR
    observed = Observed(window, e2e, samples, anomaly_window, hours)
    return observed, last, learned


def _events(conn: Connection, source: str, start: datetime, end: datetime) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(events)
            .where(events.c.source == source, events.c.received_at >= start, events.c.received_at < end)
        ).scalar_one()
    )


def _last_event(conn: Connection, source: str, known: datetime | None) -> datetime | None:
    stmt = select(func.max(events.c.received_at)).where(events.c.source == source)
    if known is not None:
        stmt = stmt.where(events.c.received_at > known)
    found = conn.execute(stmt).scalar_one()
    return found or known


def _first_hour(conn: Connection, source: str, now: datetime) -> datetime:
    """Where a new source's baseline starts: its first event of the last two weeks, else this hour."""
    first = conn.execute(
        select(func.min(events.c.received_at)).where(
            events.c.source == source, events.c.received_at >= now - HISTORY
        )
    ).scalar_one()
    return hour_start(first or now)


def _joined(source: str, start: datetime, end: datetime | None = None) -> Any:
    clauses = [events.c.source == source, attempts.c.started_at >= start]
    if end is not None:
        clauses.append(attempts.c.started_at < end)
    return and_(*clauses)


_FROM = attempts.join(events, events.c.id == attempts.c.event_id)


def _attempts(conn: Connection, source: str, start: datetime, end: datetime) -> tuple[int, int]:
    """(done, failed) attempts of the source's events that started in [start, end)."""
    rows = conn.execute(
        select(attempts.c.outcome, func.count())
        .select_from(_FROM)
        .where(_joined(source, start, end))
        .group_by(attempts.c.outcome)
    )
    by_outcome = {outcome: int(n) for outcome, n in rows}
    return by_outcome.get(AttemptOutcome.DONE, 0), sum(by_outcome.get(o, 0) for o in FAILED)


def _p95(conn: Connection, column: Any, where: Any) -> tuple[float | None, int]:
    """The nearest-rank p95 of `column` and the number of values: computed by PostgreSQL
    (percentile_disc is the nearest rank), or here from the values on SQLite."""
    if conn.dialect.name == "postgresql":
        stmt = select(func.percentile_disc(0.95).within_group(column), func.count()).select_from(_FROM)
        value, n = conn.execute(stmt.where(where)).one()
        return (None if value is None else float(value)), int(n)
    values = [
        float(v) for (v,) in conn.execute(select(column).select_from(_FROM).where(where)) if v is not None
    ]
    return quantile(values, 0.95), len(values)


def _processing_p95(conn: Connection, source: str, since: datetime) -> tuple[float | None, int]:
    where = and_(_joined(source, since), attempts.c.outcome == AttemptOutcome.DONE)
    return _p95(conn, attempts.c.duration_ms, where)


def _end_to_end_p95(conn: Connection, source: str, since: datetime) -> tuple[float | None, int]:
    """p95 of processed_at − received_at over the events finished since `since`."""
    where = and_(_joined(source, since), attempts.c.outcome == AttemptOutcome.DONE)
    if conn.dialect.name == "postgresql":
        return _p95(conn, func.extract("epoch", events.c.processed_at - events.c.received_at), where)
    rows = conn.execute(select(events.c.processed_at, events.c.received_at).select_from(_FROM).where(where))
    values = [(done - got).total_seconds() for done, got in rows if done is not None]
    return quantile(values, 0.95), len(values)
