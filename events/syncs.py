"""What operators read and do about syncs, shared by the CLI and the /v1 API: every stream's status
(cursor, lag, last run, coverage, last error), a stream's run history, rewinding a cursor (audited),
and the quarantined items.

*Lag* is how old the data may be: now minus the start of the last run that reached the present.
*Coverage* is, of the records a run found new, the share a webhook had already delivered (the same or
a newer version stored from an event); a drop means webhooks are being lost upstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, func, select, update

from connectors import registry
from events import audit
from events.db import quarantine, row_dict, sync_cursors, sync_runs
from events.sources import Source
from schemas.errors import ConfigError, HookyardError

COVERAGE_WINDOW = timedelta(hours=24)


class RewindRefused(HookyardError):
    """A run holds the stream: rewinding under it would race its checkpoints."""


def coverage(covered: int, changed: int) -> float | None:
    return round(covered / changed, 4) if changed else None


def _run_dict(row: Any) -> dict[str, Any]:
    return {**row_dict(row), "coverage": coverage(row.covered, row.changed)}


def streams(sources: Mapping[str, Source]) -> list[tuple[str, str, float | None]]:
    """(source, stream, interval) of every stream a source keeps fresh."""
    return [
        (source.name, stream, interval)
        for source in sources.values()
        for stream, interval in (source.sync or {}).items()
    ]


def status(conn: Connection, sources: Mapping[str, Source], now: datetime) -> list[dict[str, Any]]:
    """Every scheduled stream, and every other one that has a cursor, with its state and last run."""
    cursors = {(r.source, r.stream): r for r in conn.execute(select(sync_cursors))}
    wanted = streams(sources)
    wanted += [(s, t, None) for s, t in sorted(cursors) if (s, t) not in {(a, b) for a, b, _ in wanted}]
    since = now - COVERAGE_WINDOW
    recent = {
        (r.source, r.stream): (r.covered or 0, r.changed or 0)
        for r in conn.execute(
            select(
                sync_runs.c.source,
                sync_runs.c.stream,
                func.sum(sync_runs.c.covered).label("covered"),
                func.sum(sync_runs.c.changed).label("changed"),
            )
            .where(sync_runs.c.started_at >= since)
            .group_by(sync_runs.c.source, sync_runs.c.stream)
        )
    }
    found = []
    for source, stream, interval in wanted:
        cursor = cursors.get((source, stream))
        last = _last_run(conn, source, stream)
        held = cursor is not None and cursor.lease_token is not None and cursor.lease_until >= now
        found.append(
            {
                "source": source,
                "stream": stream,
                "interval_s": interval,
                "cursor": cursor.cursor if cursor else None,
                "checkpoint_at": _iso(cursor.checkpoint_at if cursor else None),
                "fresh_at": _iso(cursor.fresh_at if cursor else None),
                "lag_s": round((now - cursor.fresh_at).total_seconds(), 1)
                if cursor and cursor.fresh_at
                else None,
                "running": held,
                "resume_at": _iso(cursor.resume_at if cursor else None),
                "failures": cursor.failures if cursor else 0,
                "last_error": cursor.last_error if cursor else None,
                "last_run": _run_dict(last) if last is not None else None,
                "coverage_24h": coverage(*recent.get((source, stream), (0, 0))),
            }
        )
    return found


def state_of(row: Mapping[str, Any]) -> str:
    """One word for a row of `status`: running, the last run's status, or never run."""
    return "running" if row["running"] else ((row["last_run"] or {}).get("status") or "never run")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _last_run(conn: Connection, source: str, stream: str) -> Any:
    return conn.execute(
        select(sync_runs)
        .where(sync_runs.c.source == source, sync_runs.c.stream == stream)
        .order_by(sync_runs.c.started_at.desc(), sync_runs.c.id)
        .limit(1)
    ).first()


def history(conn: Connection, source: str, stream: str, limit: int = 20) -> list[dict[str, Any]]:
    """A stream's runs, newest first."""
    rows = conn.execute(
        select(sync_runs)
        .where(sync_runs.c.source == source, sync_runs.c.stream == stream)
        .order_by(sync_runs.c.started_at.desc(), sync_runs.c.id)
        .limit(limit)
    )
    return [_run_dict(r) for r in rows]


def rewind(
    conn: Connection,
    sources: Mapping[str, Source],
    source: str,
    stream: str,
    to: datetime,
    *,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """Point a stream's cursor at `to` (the next run reads everything changed since), audited. Refused
    while a run holds the stream."""
    configured = sources.get(source)
    api = registry.get(configured.connector).api if configured is not None else None
    if configured is None or configured.api.access is None or api is None or stream not in api.streams:
        raise ConfigError(f"no stream {stream!r} of a source {source!r} with an API in the sources file")
    cursor = api.streams[stream].rewind(to)
    c = sync_cursors.c
    before = conn.execute(
        select(c.cursor, c.lease_token, c.lease_until).where(c.source == source, c.stream == stream)
    ).first()
    if before is not None and before.lease_token is not None and before.lease_until >= now:
        raise RewindRefused(f"{source}/{stream} is running; rewind it once the run ends")
    if before is None:
        conn.execute(sync_cursors.insert().values(source=source, stream=stream, failures=0))
    conn.execute(
        update(sync_cursors)
        .where(and_(c.source == source, c.stream == stream))
        .values(cursor=cursor, resume_at=now, queued_at=None, lease_token=None, lease_until=None)
    )
    change = {
        "to": to.isoformat(),
        "cursor_before": before.cursor if before else None,
        "cursor_after": cursor,
    }
    audit.record(conn, actor, "sync.rewind", f"{source}/{stream}", change)
    return {"source": source, "stream": stream, **change}


def quarantined(
    conn: Connection, source: str | None = None, stream: str | None = None, limit: int = 50, offset: int = 0
) -> list[dict[str, Any]]:
    """Synced items their schema refused, most recently seen first, with their field errors."""
    stmt = select(quarantine)
    if source is not None:
        stmt = stmt.where(quarantine.c.source == source)
    if stream is not None:
        stmt = stmt.where(quarantine.c.stream == stream)
    stmt = stmt.order_by(quarantine.c.last_seen_at.desc(), quarantine.c.id.desc()).limit(limit).offset(offset)
    return [row_dict(r) for r in conn.execute(stmt)]


def prune(conn: Connection, *, runs_before: datetime, quarantine_before: datetime) -> dict[str, int]:
    """Retention: finished runs that started before `runs_before`, quarantined items last seen before
    `quarantine_before` (a stream's cursor and its running run are never touched)."""
    runs = conn.execute(
        delete(sync_runs).where(sync_runs.c.started_at < runs_before, sync_runs.c.finished_at.is_not(None))
    ).rowcount
    items = conn.execute(delete(quarantine).where(quarantine.c.last_seen_at < quarantine_before)).rowcount
    return {"sync_runs": runs, "quarantine": items}
