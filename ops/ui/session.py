"""The dashboard's session: an operator API token traded for a signed cookie, and CSRF tokens.

A cookie value is `base64url(JSON payload).base64url(HMAC-SHA256(key, payload))`; the payload holds
the token's id, name and scope, a random CSRF token and an expiry. It is HttpOnly and SameSite=Strict
(Secure with `HOOKYARD_UI__SECURE_COOKIE`). Each request checks the signature, the expiry and that
the API token is still active, so revoking the token ends its sessions.

Every form POST carries the session's CSRF token in the field `csrf`; a POST without a session, or
whose field is missing or differs, is refused with 403. The login form has one too, bound to a
short-lived signed pre-session cookie.

The key is `HOOKYARD_UI__SECRET_KEY`, or else a random key made once and kept in the database
(`app_secrets`), so every web process on every machine signs alike with nothing to configure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, select

from events.db import app_secrets, dialect_insert, utcnow

SESSION_COOKIE = "hookyard_session"
LOGIN_COOKIE = "hookyard_login"
CSRF_FIELD = "csrf"
KEY_NAME = "ui_session_key"
LOGIN_TTL_S = 600.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    token_id: str
    name: str
    scope: str
    csrf: str
    expires: float

    def can_write(self) -> bool:
        return self.scope == "write"


class Signer:
    """Signs and checks cookie values with a key it fetches once (from the settings or the database)."""

    def __init__(self, key: Callable[[], bytes], clock: Callable[[], float] = time.time) -> None:
        self._key_source = key
        self._key: bytes | None = None
        self._lock = threading.Lock()
        self._clock = clock

    def _secret(self) -> bytes:
        with self._lock:
            if self._key is None:
                self._key = self._key_source()
            return self._key

    def sign(self, payload: dict[str, Any]) -> str:
        body = orjson.dumps(payload)
        mac = hmac.new(self._secret(), body, hashlib.sha256).digest()
        return f"{_b64(body)}.{_b64(mac)}"

    def check(self, value: str | None) -> dict[str, Any] | None:
        """The payload of a genuine, unexpired value; None for anything else."""
        if not value or value.count(".") != 1:
            return None
        body_text, mac_text = value.split(".")
        try:
            body, mac = _unb64(body_text), _unb64(mac_text)
        except ValueError:
            return None
        expected = hmac.new(self._secret(), body, hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected):
            return None
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(payload, dict) or float(payload.get("e", 0)) <= self._clock():
            return None
        return payload

    def new_session(self, token_id: str, name: str, scope: str, ttl_s: float) -> tuple[Session, str]:
        session = Session(token_id, name, scope, secrets.token_urlsafe(24), self._clock() + ttl_s)
        value = self.sign({"t": token_id, "n": name, "s": scope, "c": session.csrf, "e": session.expires})
        return session, value

    def session(self, value: str | None) -> Session | None:
        payload = self.check(value)
        if payload is None or not all(k in payload for k in "tnsc"):
            return None
        return Session(payload["t"], payload["n"], payload["s"], payload["c"], float(payload["e"]))

    def login_token(self) -> tuple[str, str]:
        """(CSRF token for the login form, the pre-session cookie value binding it)."""
        csrf = secrets.token_urlsafe(24)
        return csrf, self.sign({"c": csrf, "e": self._clock() + LOGIN_TTL_S})

    def login_csrf(self, value: str | None) -> str | None:
        payload = self.check(value)
        return None if payload is None else str(payload.get("c") or "") or None


def same(expected: str | None, given: str | None) -> bool:
    """Constant-time equality of two tokens; a missing one never matches."""
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def stored_key(engine: Engine) -> bytes:
    """The signing key kept in the database, made on first use (two processes racing agree on one)."""
    with engine.begin() as conn:
        fresh = secrets.token_urlsafe(48)
        stmt = dialect_insert(conn.dialect.name)(app_secrets).values(
            name=KEY_NAME, value=fresh, created_at=utcnow()
        )
        conn.execute(stmt.on_conflict_do_nothing())
        value = conn.execute(select(app_secrets.c.value).where(app_secrets.c.name == KEY_NAME)).scalar_one()
    return str(value).encode()
