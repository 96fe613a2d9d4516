"""Source health flags: a source whose vendor refused our credentials needs re-authorizing."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection, delete, select

from events.db import dialect_insert, source_flags
from events.sources import Source

log = structlog.get_logger()


def flag(conn: Connection, source: str, reason: str, now: datetime) -> None:
    """Mark a source as needing re-authorization (in the caller's transaction), with the reason."""
    values = {"needs_reauth": True, "reason": reason, "flagged_at": now}
    stmt = dialect_insert(conn.dialect.name)(source_flags).values(source=source, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["source"], set_=values))
    log.error("source.needs_reauthorization", source=source, reason=reason)


def statuses(conn: Connection, sources: Mapping[str, Source]) -> list[dict[str, Any]]:
    """Every configured source with its flag, if any."""
    flags = {r.source: r for r in conn.execute(select(source_flags))}
    return [
        {
            "name": s.name,
            "connector": s.connector,
            "needs_reauth": bool(flags[s.name].needs_reauth) if s.name in flags else False,
            "reason": flags[s.name].reason if s.name in flags else None,
            "flagged_at": flags[s.name].flagged_at.isoformat() if s.name in flags else None,
        }
        for s in sources.values()
    ]


def clear(conn: Connection, source: str) -> bool:
    """Clear a source's flag once it has been re-authorized; False when it had none."""
    return bool(conn.execute(delete(source_flags).where(source_flags.c.source == source)).rowcount)
