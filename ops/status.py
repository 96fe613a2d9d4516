"""What `hookyard status` and the dashboard show: one snapshot of the whole system, read from the
database (and the broker's queue lengths), JSON-ready.

    sources      health score, its level, SLA and anomaly states, flags, last event
    inbox        per source: events accepted, processing, waiting to retry (and how many not due
                 yet: the delay store), dead; the oldest unfinished event
    queues       messages waiting in each of Hookyard's broker queues (up to 10 event ids each)
    dead letters per source: how many wait for an operator, and the latest
    quotas       vendor API calls today against the daily quota, and when it runs out at the
                 recent rate
    beat         who holds the beat lease (the one beat that sends the schedule), until when
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, func, select

from events import counts, flags, leader
from events.db import UNFINISHED, LetterState, dead_letters, events
from events.exposition import GAUGE_STATES, read_inbox_stats
from events.health.quota import day_start, forecast, hour_start, trailing_hour_rate
from events.monitoring import breached, snapshots
from events.queue import DEAD_LETTER_QUEUE, hookyard_queues, queue_depths
from events.settings import get_settings
from events.sources import Source

log = structlog.get_logger()

OK, WARN, BAD, UNKNOWN = "ok", "warn", "bad", "unknown"
WARN_BELOW, BAD_BELOW = 90, 50  # score levels


def level(score: int | None, breaches: list[str], needs_reauth: bool) -> str:
    """ok / warn / bad / unknown: a flag, an SLA breach, an anomaly or a score under 50 is bad."""
    if needs_reauth or breaches or (score is not None and score < BAD_BELOW):
        return BAD
    if score is None:
        return UNKNOWN
    return WARN if score < WARN_BELOW else OK


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def source_rows(conn: Connection, sources: Mapping[str, Source]) -> list[dict[str, Any]]:
    judged = snapshots(conn)
    rows = []
    for flag in flags.statuses(conn, sources):
        snap = judged.get(flag["name"], {})
        breaches = breached(snap)
        rows.append(
            {
                "name": flag["name"],
                "connector": flag["connector"],
                "score": snap.get("score"),
                "level": level(snap.get("score"), breaches, flag["needs_reauth"]),
                "worst": snap.get("worst"),
                "sla": {name: s["status"] for name, s in (snap.get("sla") or {}).items()},
                "anomalies": snap.get("anomalies") or {},
                "breaches": breaches,
                "needs_reauth": flag["needs_reauth"],
                "flag_reason": flag["reason"],
                "last_event_at": snap.get("last_event_at"),
                "evaluated_at": snap.get("evaluated_at"),
            }
        )
    return rows


def inbox_rows(engine: Engine, sources: Mapping[str, Source], now: datetime) -> list[dict[str, Any]]:
    stats = read_inbox_stats(engine, now, timeout_s=5.0)
    names = sorted(set(sources) | {source for source, _ in stats.counts})
    rows = []
    for name in names:
        row: dict[str, Any] = {"source": name}
        row.update({str(state): stats.counts.get((name, state), 0) for state in GAUGE_STATES})
        row["delayed"] = stats.delayed.get(name, 0)
        oldest = stats.oldest.get(name)
        row["oldest_unfinished_s"] = None if oldest is None else max((now - oldest).total_seconds(), 0.0)
        rows.append(row)
    return rows


def oldest_unfinished(conn: Connection, now: datetime) -> dict[str, Any] | None:
    row = conn.execute(
        select(events.c.id, events.c.source, events.c.state, events.c.received_at)
        .where(events.c.state.in_(UNFINISHED))
        .order_by(events.c.received_at, events.c.id)
        .limit(1)
    ).first()
    if row is None:
        return None
    age = max((now - row.received_at).total_seconds(), 0.0)
    return {
        "id": row.id,
        "source": row.source,
        "state": row.state,
        "received_at": _iso(row.received_at),
        "age_s": age,
    }


def dead_letter_rows(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(dead_letters.c.source, func.count(), func.max(dead_letters.c.died_at))
        .where(dead_letters.c.state == LetterState.DEAD)
        .group_by(dead_letters.c.source)
        .order_by(dead_letters.c.source)
    )
    return [{"source": s, "dead": int(n), "latest": _iso(latest)} for s, n, latest in rows]


def quota_rows(conn: Connection, sources: Mapping[str, Source], now: datetime) -> list[dict[str, Any]]:
    """Every source with a quota or with calls today."""
    used = counts.totals(conn, counts.VENDOR_CALLS, day_start(now))
    this_hour = hour_start(now)
    last_hour = this_hour - timedelta(hours=1)
    hourly = counts.hourly(conn, counts.VENDOR_CALLS, (this_hour, last_hour))
    rows = []
    for name, source in sources.items():
        quota, calls = source.api.daily_quota, used.get(name, 0)
        if quota is None and not calls:
            continue
        rate = trailing_hour_rate(hourly.get((name, this_hour), 0), hourly.get((name, last_hour), 0), now)
        row: dict[str, Any] = {"source": name, "quota": quota, "used": calls, "rate_per_h": round(rate, 1)}
        if quota is not None:
            found = forecast(quota, calls, rate, now)
            row.update(
                remaining=found.remaining,
                status=str(found.status),
                runs_out_at=_iso(found.runs_out_at),
                resets_at=_iso(found.resets_at),
            )
        rows.append(row)
    return rows


def queue_rows(sources: Mapping[str, Source], depths: Callable[..., dict[str, int | None]]) -> dict[str, Any]:
    """Messages waiting in each queue, and in RabbitMQ's dead-letter queue when there is one."""
    names = hookyard_queues(s.connector for s in sources.values())
    if get_settings().quorum_queues:
        names.append(DEAD_LETTER_QUEUE)
    try:
        return {"reachable": True, "messages": depths(names, 3.0)}
    except Exception as exc:
        log.warning("status.broker_unreachable", error=repr(exc))
        return {"reachable": False, "messages": dict.fromkeys(names)}


def snapshot(
    engine: Engine,
    sources: Mapping[str, Source],
    now: datetime,
    *,
    depths: Callable[..., dict[str, int | None]] | None = queue_depths,
) -> dict[str, Any]:
    """The whole status, JSON-ready (`depths=None` leaves the broker out)."""
    with engine.connect() as conn:
        result: dict[str, Any] = {
            "at": now.isoformat(),
            "sources": source_rows(conn, sources),
            "oldest_unfinished": oldest_unfinished(conn, now),
            "dead_letters": dead_letter_rows(conn),
            "quotas": quota_rows(conn, sources, now),
            "beat": leader.current(conn, now),
        }
    result["inbox"] = inbox_rows(engine, sources, now)
    if depths is not None:
        result["queues"] = queue_rows(sources, depths)
    return result
