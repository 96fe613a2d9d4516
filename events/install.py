"""Connecting a source: the OAuth authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636).

`start` makes a single-use `state` and, when PKCE is on, a code verifier; it stores both (the
verifier sealed) and returns the vendor's authorize URL. The vendor sends the browser back to
`/oauth/{source}/callback` with a code and the state; `finish` checks the state, burns it, trades
the code with the verifier and stores the pair (`events.connections.store_grant`).

The state is `{source}.{nonce}.{expires}.{signature}`: signed with HOOKYARD_TOKEN_KEYS, so a forged
or altered one is refused before the database is asked; bound to its source; short-lived
(`oauth.state_ttl_s`); single use (its row is marked used in one conditional UPDATE before the code
is traded, so two callbacks racing with one state cannot both pass). Every refusal is an
`InstallRefused` with a code and a sentence that says what to do.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import structlog
from sqlalchemy import Engine, delete, insert, select, update

from connectors.oauth import GrantRefused, Pkce, challenge, new_verifier
from events import audit
from events.connections import store_grant
from events.db import oauth_states
from events.secretbox import SecretBox
from events.settings import OAuthSettings
from events.sources import Source
from schemas.errors import HookyardError, TransientError

log = structlog.get_logger()

STALE_STATES = timedelta(days=1)  # used or expired install states are deleted after this


class InstallRefused(HookyardError):
    """An install step refused: `status`, a machine-readable `code` and a sentence for a person."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def redirect_uri(source: Source, settings: OAuthSettings) -> str:
    """Where the vendor sends the browser back; it must be registered at the vendor as it is."""
    if source.oauth is not None and source.oauth.redirect_uri:
        return source.oauth.redirect_uri
    return f"{settings.public_url.rstrip('/')}/oauth/{source.name}/callback"


def _nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


@dataclass(frozen=True)
class Started:
    url: str = field(repr=False)  # carries the state: single use, but still nobody else's business
    expires_at: datetime


def start(
    engine: Engine, source: Source, box: SecretBox, settings: OAuthSettings, actor: str, now: datetime
) -> Started:
    """A new install of `source`: its state row, and the vendor URL to open in a browser."""
    oauth = source.oauth
    if oauth is None:
        raise InstallRefused(
            404, "not_configured", f"source {source.name!r} has no [sources.{source.name}.oauth]"
        )
    nonce = secrets.token_urlsafe(24)
    expires = now + timedelta(seconds=settings.state_ttl_s)
    signed = f"{source.name}.{nonce}.{int(expires.timestamp())}"
    state = f"{signed}.{box.sign(signed.encode())}"
    verifier = None if oauth.pkce is Pkce.OFF else new_verifier()
    target = redirect_uri(source, settings)
    with engine.begin() as conn:
        conn.execute(delete(oauth_states).where(oauth_states.c.expires_at < now - STALE_STATES))
        conn.execute(
            insert(oauth_states).values(
                nonce_hash=_nonce_hash(nonce),
                source=source.name,
                verifier=None if verifier is None else box.seal(verifier),
                redirect_uri=target,
                actor=actor[:100],
                created_at=now,
                expires_at=expires,
            )
        )
        audit.record(conn, actor, "connections.connect", source.name, {"expires_at": expires.isoformat()})
    query: dict[str, str] = {
        "response_type": "code",
        "client_id": oauth.client_id.get_secret_value(),
        "redirect_uri": target,
        "state": state,
        **oauth.authorize_params,
    }
    if oauth.scopes:
        query["scope"] = oauth.scope_separator.join(oauth.scopes)
    if verifier is not None:
        query["code_challenge"] = challenge(verifier)
        query["code_challenge_method"] = "S256"
    separator = "&" if urlsplit(oauth.authorize_url).query else "?"
    log.info("oauth.started", source=source.name, actor=actor, pkce=verifier is not None)
    return Started(f"{oauth.authorize_url}{separator}{urlencode(query)}", expires)


def _check_state(state: str, source: str, box: SecretBox, now: datetime) -> str:
    """The nonce of a well-formed, genuine, current state of `source`; InstallRefused otherwise."""
    parts = state.split(".")
    if len(parts) != 4 or not parts[2].isdigit():
        raise InstallRefused(400, "invalid_state", "the state parameter is missing or malformed")
    name, nonce, expires, signature = parts
    if not box.verify(f"{name}.{nonce}.{expires}".encode(), signature):
        raise InstallRefused(400, "invalid_state", "the state parameter was not issued by this Hookyard")
    if name != source:
        raise InstallRefused(
            400, "state_source_mismatch", f"this state was issued for source {name!r}, not {source!r}"
        )
    if int(expires) <= now.timestamp():
        raise InstallRefused(
            400,
            "state_expired",
            f"the install took too long; start again: hookyard connections connect {source}",
        )
    return nonce


def _consume(engine: Engine, source: str, nonce: str, now: datetime) -> Any:
    """Mark the state used (once only) and return its row."""
    key = _nonce_hash(nonce)
    with engine.begin() as conn:
        burnt = conn.execute(
            update(oauth_states)
            .where(
                oauth_states.c.nonce_hash == key,
                oauth_states.c.source == source,
                oauth_states.c.used_at.is_(None),
                oauth_states.c.expires_at > now,
            )
            .values(used_at=now)
        ).rowcount
        row = conn.execute(select(oauth_states).where(oauth_states.c.nonce_hash == key)).first()
    if burnt == 1:
        return row
    if row is not None and row.used_at is not None:
        raise InstallRefused(
            400,
            "state_replayed",
            f"this state was already used; start again: hookyard connections connect {source}",
        )
    raise InstallRefused(400, "invalid_state", "no install is waiting for this state")


def finish(
    engine: Engine,
    source: Source,
    box: SecretBox,
    query: dict[str, str],
    now: datetime,
    http: httpx.Client | None = None,
    timeout_s: float = 15.0,
) -> dict[str, Any]:
    """The callback: check and burn the state, trade the code, store the pair. Returns what an
    operator may see of the new connection (its scope and expiry, not a token)."""
    if source.oauth is None:
        raise InstallRefused(
            404, "not_configured", f"source {source.name!r} has no [sources.{source.name}.oauth]"
        )
    nonce = _check_state(query.get("state", ""), source.name, box, now)
    row = _consume(engine, source.name, nonce, now)
    if query.get("error"):
        said = f"{query['error']}: {query.get('error_description', '')}".strip(": ")[:300]
        raise InstallRefused(400, "provider_denied", f"the provider did not grant access ({said})")
    code = query.get("code", "")
    if not code:
        raise InstallRefused(400, "missing_code", "the provider sent no authorization code")
    verifier = None if row.verifier is None else box.open(row.verifier)
    try:
        tokens = source.oauth.endpoint(http, timeout_s).exchange(code, row.redirect_uri, verifier)
    except GrantRefused as exc:
        raise InstallRefused(
            400, "exchange_refused", f"{exc}; start again: hookyard connections connect {source.name}"
        ) from None
    except TransientError as exc:
        raise InstallRefused(502, "provider_unavailable", f"{exc}; start again in a moment") from None
    with engine.begin() as conn:
        store_grant(conn, source, tokens, box, row.actor, now)
    log.info("oauth.connected", source=source.name, actor=row.actor, scope=tokens.scope)
    return {
        "source": source.name,
        "status": "connected",
        "scope": tokens.scope,
        "expires_in_s": tokens.expires_in_s,
        "refreshable": tokens.refresh_token is not None,
    }
