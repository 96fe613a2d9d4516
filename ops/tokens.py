"""Operator API tokens: shown once at creation, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from events.db import api_tokens, utcnow

SCOPES = ("read", "write")
PREFIX = "hy_"


@dataclass(frozen=True)
class Principal:
    name: str
    scope: str
    id: str = ""  # the token's id (the dashboard's session checks it is still active)

    def can_write(self) -> bool:
        return self.scope == "write"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(conn: Connection, name: str, scope: str) -> str:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    token = PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        insert(api_tokens).values(
            id=str(uuid.uuid4()), name=name, token_hash=_hash(token), scope=scope, created_at=utcnow()
        )
    )
    return token


def authenticate(conn: Connection, token: str) -> Principal | None:
    # the lookup is by hash, so comparing secrets never happens in Python at all
    row = conn.execute(
        select(api_tokens.c.name, api_tokens.c.scope, api_tokens.c.id).where(
            api_tokens.c.token_hash == _hash(token), api_tokens.c.revoked_at.is_(None)
        )
    ).first()
    return None if row is None else Principal(row.name, row.scope, row.id)


def active(conn: Connection, token_id: str) -> Principal | None:
    """The token with this id, unless it was revoked (or never existed)."""
    row = conn.execute(
        select(api_tokens.c.name, api_tokens.c.scope, api_tokens.c.id).where(
            api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None)
        )
    ).first()
    return None if row is None else Principal(row.name, row.scope, row.id)


def revoke(conn: Connection, token_id: str) -> bool:
    return bool(
        conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        ).rowcount
    )


def listing(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(
            api_tokens.c.id,
            api_tokens.c.name,
            api_tokens.c.scope,
            api_tokens.c.created_at,
            api_tokens.c.revoked_at,
        ).order_by(api_tokens.c.created_at)
    )
    return [
        {
            "id": r.id,
            "name": r.name,
            "scope": r.scope,
            "created_at": r.created_at.isoformat(),
            "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
        }
        for r in rows
    ]
