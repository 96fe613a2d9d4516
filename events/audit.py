"""The audit log: every operator write, from the CLI or the API, with who did it and when."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert

from events.db import audit_log, utcnow


def record(conn: Connection, actor: str, action: str, target: str | None, details: Any = None) -> None:
    """Write one audit row in the caller's transaction, so the action and its record commit together."""
    conn.execute(
        insert(audit_log).values(at=utcnow(), actor=actor, action=action, target=target, details=details)
    )
