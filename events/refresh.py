"""Fresh access tokens for vendor calls, refreshed by exactly one caller at a time, everywhere.

`ConnectionTokens` is the `connectors.tokens.TokenProvider` of a source with an OAuth connection.
`token()` reads the row and returns the access token unless it expires within the source's
`refresh_margin_s`; `refresh(rejected)` is the client's answer to a 401. Either way a refresh runs
single-flight, because vendors that rotate refresh tokens (Slack, Zendesk, Shopify's expiring
tokens) invalidate the old one on use: two refreshes racing with one refresh token end with one of
them refused, or with a pair nobody kept.

- Within a process, a lock per source lets one thread through; the others then read its result.
- PostgreSQL: the refresher holds `SELECT … FOR UPDATE` on the connection's row while it calls the
  vendor and commits the new pair in that transaction. Callers elsewhere block on the row and, once
  it commits, find a fresh token and use it (`joined`). A refresher that dies (SIGKILL) loses its
  connection, the server rolls back and releases the row: the next caller refreshes at once.
- SQLite (no row locks): a lease on the row (`lease_token`, `lease_until`), taken by one
  conditional UPDATE, held during the vendor call; the others poll the row until the generation
  moves or the lease expires (`oauth.refresh_lease_s`), so a dead holder delays them by that much.

The new pair is committed before the new access token is handed out. A refusal (`invalid_grant`
and the like) marks the connection `needs_reauth`, flags the source (`hookyard sources list`) and
raises `ReauthorizationRequired`; later callers get that error at once, without asking the vendor,
until someone connects the source again. A transient failure (5xx, timeout) leaves everything as it
was and raises `TransientError`: the task retries later.
"""

from __future__ import annotations

import hmac
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import Connection, Engine, or_, select, text, update
from sqlalchemy.exc import OperationalError

from connectors.http import process_client
from connectors.oauth import GrantRefused, TokenSet
from connectors.tokens import TokenAuth
from events import flags, metrics
from events.connections import granted_values
from events.db import ConnectionStatus, connections, utcnow
from events.secretbox import SecretBox
from events.settings import OAuthSettings
from events.sources import Source
from schemas.errors import ReauthorizationRequired, TransientError

log = structlog.get_logger()

POLL_S = 0.05  # how often a caller waiting on a lease (SQLite) looks at the row again
_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _process_lock(engine: Engine, source: str) -> threading.Lock:
    key = (engine.url.render_as_string(hide_password=True), source)
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


class ConnectionTokens:
    """The access token of one source's OAuth connection (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        source: Source,
        box: SecretBox,
        settings: OAuthSettings,
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if source.oauth is None:
            raise ValueError(f"source {source.name!r} has no [oauth] table")
        self.engine, self.source, self.box, self.settings = engine, source.name, box, settings
        self.margin = timedelta(seconds=source.oauth.refresh_margin_s)
        self.endpoint = source.oauth.endpoint(http or process_client(), settings.http_timeout_s)
        self._clock, self._sleep = clock, sleep
        self._lock = _process_lock(engine, source.name)

    def __repr__(self) -> str:
        return f"ConnectionTokens({self.source!r})"

    # ----- the TokenProvider protocol -----------------------------------------------------------
    def token(self) -> str:
        row = self._usable(self._read())
        if not self._stale(row, None):
            return self.box.open(row.access_token)
        return self._refresh(None)

    def refresh(self, rejected: str) -> str:
        return self._refresh(rejected)

    # ----- the row ------------------------------------------------------------------------------
    def _read(self, conn: Connection | None = None, *, lock: bool = False) -> Any:
        query = select(connections).where(connections.c.source == self.source)
        if lock:
            query = query.with_for_update()
        if conn is not None:
            return conn.execute(query).first()
        with self.engine.connect() as own:
            return own.execute(query).first()

    def _usable(self, row: Any) -> Any:
        if row is None or row.status == ConnectionStatus.REVOKED or row.access_token is None:
            raise ReauthorizationRequired(
                f"{self.source}: not connected; run hookyard connections connect {self.source}"
            )
        if row.status == ConnectionStatus.NEEDS_REAUTH:
            raise ReauthorizationRequired(f"{self.source}: {row.reason}")
        return row

    def _stale(self, row: Any, rejected: str | None) -> bool:
        """Whether this caller must refresh: its token was refused and is still the stored one, or
        the stored one expires within the margin."""
        if rejected is not None:
            return hmac.compare_digest(self.box.open(row.access_token).encode(), rejected.encode())
        return row.expires_at is not None and row.expires_at - self.margin <= self._clock()

    def _joined(self, row: Any) -> str:
        metrics.OAUTH_REFRESHES.labels(self.source, "joined").inc()
        return str(self.box.open(row.access_token))

    # ----- single flight ------------------------------------------------------------------------
    def _refresh(self, rejected: str | None) -> str:
        if not self._lock.acquire(timeout=self.settings.refresh_wait_s):
            raise TransientError(f"{self.source}: a token refresh in this process is taking too long")
        try:
            row = self._usable(self._read())
            if not self._stale(row, rejected):
                return self._joined(row)
            if self.engine.dialect.name == "postgresql":
                return self._refresh_row_locked(rejected)
            return self._refresh_leased(rejected)
        finally:
            self._lock.release()

    def _refresh_row_locked(self, rejected: str | None) -> str:
        refused: ReauthorizationRequired  # recorded in the transaction, raised once it commits
        with self.engine.begin() as conn:
            wait_ms = int(self.settings.refresh_wait_s * 1000)
            conn.execute(text(f"SET LOCAL lock_timeout = {wait_ms}"))
            try:
                row = self._usable(self._read(conn, lock=True))
            except OperationalError:
                raise TransientError(f"{self.source}: a token refresh elsewhere is taking too long") from None
            if not self._stale(row, rejected):
                return self._joined(row)
            granted = self._call_vendor(row)
            if isinstance(granted, ReauthorizationRequired):
                refused = self._refused(conn, granted)
            else:
                return self._store(conn, row, granted)
        raise refused

    def _refresh_leased(self, rejected: str | None) -> str:
        lease = uuid.uuid4().hex
        deadline = time.monotonic() + self.settings.refresh_wait_s
        while True:
            now = self._clock()
            with self.engine.begin() as conn:
                taken = conn.execute(
                    update(connections)
                    .where(
                        connections.c.source == self.source,
                        connections.c.status == ConnectionStatus.CONNECTED,
                        or_(connections.c.lease_until.is_(None), connections.c.lease_until <= now),
                    )
                    .values(
                        lease_token=lease,
                        lease_until=now + timedelta(seconds=self.settings.refresh_lease_s),
                    )
                ).rowcount
                row = self._usable(self._read(conn))
                if taken and not self._stale(row, rejected):
                    self._release(conn, lease)
                    return self._joined(row)
            if taken:
                break
            if not self._stale(row, rejected):
                return self._joined(row)
            if time.monotonic() > deadline:
                raise TransientError(f"{self.source}: a token refresh elsewhere is taking too long")
            self._sleep(POLL_S)
        try:
            granted = self._call_vendor(row)
        except BaseException:
            with self.engine.begin() as conn:
                self._release(conn, lease)
            raise
        if isinstance(granted, ReauthorizationRequired):
            with self.engine.begin() as conn:
                refused = self._refused(conn, granted)
            raise refused
        with self.engine.begin() as conn:
            current = self._read(conn)
            if current is None or current.generation != row.generation:
                # our lease ran out and another caller refreshed meanwhile: its pair is the one kept
                log.warning("oauth.refresh_superseded", source=self.source)
                return self._joined(self._usable(current))
            return self._store(conn, row, granted)

    def _release(self, conn: Connection, lease: str) -> None:
        conn.execute(
            update(connections)
            .where(connections.c.source == self.source, connections.c.lease_token == lease)
            .values(lease_token=None, lease_until=None)
        )

    # ----- the vendor, and what it said -----------------------------------------------------------
    def _call_vendor(self, row: Any) -> TokenSet | ReauthorizationRequired:
        """The refresh grant; a refusal is returned (to be recorded), a transient failure raised."""
        if row.refresh_token is None:
            return ReauthorizationRequired("the provider gave no refresh token and the access token expired")
        try:
            return self.endpoint.refresh(self.box.open(row.refresh_token))
        except GrantRefused as exc:
            return exc
        except TransientError:
            metrics.OAUTH_REFRESHES.labels(self.source, "failed").inc()
            log.warning("oauth.refresh_failed", source=self.source, exc_info=True)
            raise

    def _store(self, conn: Connection, row: Any, granted: TokenSet) -> str:
        now = self._clock()
        values = granted_values(granted, self.box, now)
        conn.execute(
            update(connections)
            .where(connections.c.source == self.source)
            .values(**values, generation=row.generation + 1, refreshed_at=now)
        )
        metrics.OAUTH_REFRESHES.labels(self.source, "ok").inc()
        log.info(
            "oauth.refreshed",
            source=self.source,
            generation=row.generation + 1,
            expires_in_s=granted.expires_in_s,
            rotated=granted.refresh_token is not None,
        )
        return granted.access_token

    def _refused(self, conn: Connection, error: ReauthorizationRequired) -> ReauthorizationRequired:
        again = f"hookyard connections connect {self.source}"
        reason = f"token refresh refused: {error}; connect the source again: {again}"
        conn.execute(
            update(connections)
            .where(connections.c.source == self.source)
            .values(status=ConnectionStatus.NEEDS_REAUTH, reason=reason, lease_token=None, lease_until=None)
        )
        flags.flag(conn, self.source, reason, self._clock())
        metrics.OAUTH_REFRESHES.labels(self.source, "refused").inc()
        return ReauthorizationRequired(f"{self.source}: {reason}")


def auth_for(
    engine: Engine, source: Source, box: SecretBox, settings: OAuthSettings, http: httpx.Client | None = None
) -> TokenAuth:
    """How a VendorClient of `source` authenticates: its connection's token, in the provider's header."""
    if source.oauth is None:
        raise ValueError(f"source {source.name!r} has no [oauth] table")
    provider = ConnectionTokens(engine, source, box, settings, http=http)
    return TokenAuth(provider, header=source.oauth.api_header, scheme=source.oauth.api_scheme)
