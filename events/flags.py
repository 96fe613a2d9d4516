"""Source health flags: a source whose vendor refused our credentials needs re-authorizing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, delete, select

from events.db import source_flags
from events.sources import Source


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
