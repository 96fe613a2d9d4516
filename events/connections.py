"""OAuth connections in the database: store a granted pair, list, revoke, reseal with a new key.

A row per source (`events.db.connections`). Tokens are sealed (`events.secretbox`) before they reach
a statement and opened only to be sent to the vendor; what this module returns to operators is the
connection's status, scope and times, never a token. How tokens are refreshed is `events.refresh`;
how a source gets connected in the first place is `events.install`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import Connection, Engine, select, update

from connectors.oauth import TokenSet
from events import audit, flags
from events.db import ConnectionStatus, connections, dialect_insert, oauth_states
from events.secretbox import TOKEN_KEYS_VAR, SecretBox, load_box
from events.settings import Settings
from events.sources import Source, environment
from schemas.errors import ConfigError, HookyardError

log = structlog.get_logger()

SHOWN = (
    "source",
    "provider",
    "status",
    "scope",
    "expires_at",
    "connected_at",
    "connected_by",
    "refreshed_at",
    "reason",
    "generation",
)  # what operators see of a row: never a token column


def box_for(settings: Settings) -> SecretBox:
    """The keys that seal tokens, from the environment or the secrets file; ConfigError when unset."""
    box = load_box(environment(settings.secrets_file))
    if box is None:
        raise ConfigError(f"{TOKEN_KEYS_VAR} is not set: OAuth connections need a key to seal tokens")
    return box


def after(now: datetime, seconds: float | None) -> datetime | None:
    return None if seconds is None else now + timedelta(seconds=seconds)


def granted_values(tokens: TokenSet, box: SecretBox, now: datetime) -> dict[str, Any]:
    """The columns a newly granted pair sets (sealed); a vendor that did not rotate keeps the old
    refresh token, so `refresh_token` is only present when a new one came."""
    values: dict[str, Any] = {
        "status": ConnectionStatus.CONNECTED,
        "access_token": box.seal(tokens.access_token),
        "expires_at": after(now, tokens.expires_in_s),
        "reason": None,
        "lease_token": None,
        "lease_until": None,
    }
    if tokens.refresh_token is not None:
        values["refresh_token"] = box.seal(tokens.refresh_token)
        values["refresh_expires_at"] = after(now, tokens.refresh_expires_in_s)
    if tokens.scope is not None:
        values["scope"] = tokens.scope
    if tokens.token_type is not None:
        values["token_type"] = tokens.token_type[:40]
    return values


def store_grant(
    conn: Connection, source: Source, tokens: TokenSet, box: SecretBox, actor: str, now: datetime
) -> None:
    """Save the pair of a completed install (a new connection, or a reconnection that replaces the
    old pair and clears a re-authorization flag), audited in the same transaction."""
    values = {
        **granted_values(tokens, box, now),
        "provider": source.oauth.provider if source.oauth else None,
        "connected_at": now,
        "connected_by": actor[:100],
        "refreshed_at": None,
    }
    values.setdefault("refresh_token", None)
    values.setdefault("refresh_expires_at", None)
    stmt = dialect_insert(conn.dialect.name)(connections).values(source=source.name, generation=1, **values)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["source"], set_={**values, "generation": connections.c.generation + 1}
        )
    )
    flags.clear(conn, source.name)
    audit.record(conn, actor, "connections.connected", source.name, {"scope": tokens.scope})


def summary(row: Any) -> dict[str, Any]:
    return {
        name: (
            row._mapping[name].isoformat() if isinstance(row._mapping[name], datetime) else row._mapping[name]
        )
        for name in SHOWN
    }


def listing(conn: Connection, sources: Mapping[str, Source]) -> list[dict[str, Any]]:
    """Every source with an `[oauth]` table, connected or not (status `not_connected`)."""
    rows = {r.source: r for r in conn.execute(select(connections))}
    result = []
    for source in sources.values():
        if source.oauth is None:
            continue
        if source.name in rows:
            result.append(summary(rows[source.name]))
        else:
            empty = dict.fromkeys(SHOWN)
            result.append(
                {**empty, "source": source.name, "provider": source.oauth.provider, "status": "not_connected"}
            )
    return result


class NotConnected(HookyardError):
    """The source has no OAuth connection to act on."""


def revoke(
    engine: Engine,
    source: Source,
    box: SecretBox,
    actor: str,
    now: datetime,
    http: httpx.Client | None = None,
) -> dict[str, Any]:
    """Forget the source's tokens, after asking the vendor to revoke them where it can (RFC 7009).
    A vendor that cannot be reached or refuses does not keep our copy alive: ours is deleted anyway
    and the answer says what the vendor did."""
    if source.oauth is None:
        raise NotConnected(f"source {source.name!r} has no [oauth] table")
    with engine.connect() as conn:
        row = conn.execute(select(connections).where(connections.c.source == source.name)).first()
    if row is None or row.status == ConnectionStatus.REVOKED:
        raise NotConnected(f"source {source.name!r} is not connected")
    vendor, detail = "not_supported", None
    if source.oauth.revoke_url is not None:
        sealed, hint = (
            (row.refresh_token, "refresh_token") if row.refresh_token else (row.access_token, "access_token")
        )
        try:
            source.oauth.endpoint(http).revoke(box.open(sealed), hint)
            vendor = "revoked"
        except HookyardError as exc:  # unreachable, refused, or sealed with a removed key
            vendor, detail = "failed", str(exc)
    with engine.begin() as conn:
        conn.execute(
            update(connections)
            .where(connections.c.source == source.name)
            .values(
                status=ConnectionStatus.REVOKED,
                access_token=None,
                refresh_token=None,
                expires_at=None,
                refresh_expires_at=None,
                lease_token=None,
                lease_until=None,
                reason=None,
                generation=connections.c.generation + 1,
            )
        )
        audit.record(conn, actor, "connections.revoked", source.name, {"vendor": vendor})
    log.info("oauth.revoked", source=source.name, vendor=vendor)
    return {
        "source": source.name,
        "status": ConnectionStatus.REVOKED.value,
        "vendor": vendor,
        "detail": detail,
    }


def rekey(engine: Engine, box: SecretBox, actor: str) -> dict[str, int]:
    """Reseal every stored token and pending PKCE verifier with the first key, one row per
    transaction, each row locked (or compared) so a refresh that commits meanwhile is never undone."""
    counts = {"connections": 0, "states": 0}
    for table, key, columns, name in (
        (connections, connections.c.source, ("access_token", "refresh_token"), "connections"),
        (oauth_states, oauth_states.c.nonce_hash, ("verifier",), "states"),
    ):
        with engine.connect() as conn:
            ids = [r[0] for r in conn.execute(select(key))]
        for ident in ids:
            with engine.begin() as conn:
                query = select(*(table.c[c] for c in columns)).where(key == ident)
                if conn.dialect.name == "postgresql":
                    query = query.with_for_update()
                row = conn.execute(query).first()
                if row is None or not any(row):
                    continue
                fresh = {c: box.reseal(v) if v else v for c, v in zip(columns, row, strict=True)}
                same = [
                    table.c[c].is_(None) if v is None else table.c[c] == v
                    for c, v in zip(columns, row, strict=True)
                ]
                counts[name] += conn.execute(
                    update(table).where(key == ident, *same).values(**fresh)
                ).rowcount
    with engine.begin() as conn:
        audit.record(conn, actor, "connections.rekey", None, counts)
    log.info("oauth.rekeyed", **counts)
    return counts
