"""Tokens for vendor calls: refreshed before expiry and once on a 401, single-flight, refusals
flagged, transient failures harmless, leases of dead holders expiring, keys rotated."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from connectors.http import VendorClient
from connectors.tokens import StaticToken, TokenAuth
from events import connections as connections_module
from events.db import ConnectionStatus, connections, source_flags, utcnow
from events.refresh import ConnectionTokens, auth_for
from events.secretbox import TOKEN_KEYS_VAR, SecretBox, new_key
from schemas.errors import ReauthorizationRequired, TransientError
from tests.unit.oauth_kit import PROVIDER, World


def provider(world: World, source: str = "helpdesk", **kwargs: Any) -> ConnectionTokens:
    return ConnectionTokens(
        world.engine, world.sources[source], world.box, world.settings.oauth, http=world.http, **kwargs
    )


def client(world: World, source: str = "helpdesk") -> VendorClient:
    auth = auth_for(world.engine, world.sources[source], world.box, world.settings.oauth, http=world.http)
    return VendorClient("zendesk", source, PROVIDER, auth=auth, http=world.http, sleep=lambda s: None)


def refreshes(world: World) -> int:
    return int(world.fake.control.oauth()["refreshes"])


def token_requests(world: World) -> int:
    return int(world.fake.control.endpoint("POST /oauth/token")["requests"])


@pytest.fixture
def connected(world: World) -> World:
    assert world.connect().status_code == 200
    return world


def test_a_fresh_token_is_used_as_it_is(connected: World) -> None:
    """Far from expiry, the stored token is handed out and the provider is not asked."""
    assert client(connected).call("GET", "/api/me").status == 200
    assert refreshes(connected) == 0


def test_a_token_about_to_expire_is_refreshed_once_and_stored_first(connected: World) -> None:
    """Within refresh_margin_s of expiry, one refresh; the stored pair is the new one when it is used."""
    later = utcnow() + timedelta(seconds=3600 - 299)
    tokens = provider(connected, clock=lambda: later)
    fresh = tokens.token()
    row = connected.row()
    assert connected.box.open(row.access_token) == fresh and row.generation == 2 and row.refreshed_at == later
    assert tokens.token() == fresh and refreshes(connected) == 1
    assert row.expires_at == later + timedelta(seconds=3600)


def test_a_401_refreshes_once_and_retries_the_call_once(connected: World) -> None:
    """The provider expired the token early: one refresh, one more try, success; a second 401 is final."""
    connected.fake.control.expire_access()
    answer = client(connected).call("GET", "/api/me")
    assert answer.status == 200 and answer.attempts == 2 and refreshes(connected) == 1
    connected.fake.control.fault("unauthorized", "/api/me", count=2)
    with pytest.raises(ReauthorizationRequired):
        client(connected).call("GET", "/api/me")
    assert refreshes(connected) == 2


def test_a_403_is_not_cured_by_refreshing() -> None:
    """A 403 (a missing scope) raises at once; the provider is not asked for a token."""
    asked: list[str] = []

    class Provider:
        def token(self) -> str:
            return "t1"

        def refresh(self, rejected: str) -> str:
            asked.append(rejected)
            return "t2"

    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(403, json={})))
    vendor = VendorClient("v", "a", "https://api.vendor.test", auth=TokenAuth(Provider()), http=http)
    with pytest.raises(ReauthorizationRequired):
        vendor.call("GET", "/x")
    assert asked == []


def test_a_static_token_cannot_refresh() -> None:
    """A fixed API key refused by the vendor needs a person; a stale rejection gets the key back."""
    key = StaticToken("sk_live_x", "payments")
    assert key.refresh("old") == "sk_live_x" and "sk_live_x" not in repr(key)
    with pytest.raises(ReauthorizationRequired, match="payments: the API token was refused"):
        key.refresh("sk_live_x")


def test_a_refused_refresh_flags_the_source_and_stops_asking(connected: World) -> None:
    """invalid_grant: the source is flagged with the reason, the connection needs re-authorizing, and
    later calls fail at once without asking the provider; connecting again clears both."""
    refresh_token = connected.box.open(connected.row().refresh_token)
    connected.fake.fake.retire(refresh_token, "revoked")  # type: ignore[attr-defined]
    connected.fake.control.expire_access()
    with pytest.raises(ReauthorizationRequired, match="invalid_grant"):
        client(connected).call("GET", "/api/me")
    asked = token_requests(connected)
    with pytest.raises(ReauthorizationRequired, match="connect the source again"):
        client(connected).call("GET", "/api/me")
    assert token_requests(connected) == asked
    row = connected.row()
    assert row.status == ConnectionStatus.NEEDS_REAUTH and "refresh token revoked" in row.reason
    with connected.engine.connect() as conn:
        flag = conn.execute(select(source_flags)).one()
    assert flag.source == "helpdesk" and "hookyard connections connect helpdesk" in flag.reason
    assert connected.connect().status_code == 200
    assert connected.row().status == ConnectionStatus.CONNECTED
    with connected.engine.connect() as conn:
        assert conn.execute(select(source_flags)).first() is None
    assert client(connected).call("GET", "/api/me").status == 200


def test_a_transient_failure_changes_nothing(connected: World) -> None:
    """A 503 from the token endpoint: TransientError, the pair and the lease as they were; next time works."""
    connected.fake.control.fault("error", "/oauth/token", status=503)
    later = utcnow() + timedelta(hours=2)
    with pytest.raises(TransientError, match="503"):
        provider(connected, clock=lambda: later).token()
    row = connected.row()
    assert row.generation == 1 and row.lease_token is None and row.status == ConnectionStatus.CONNECTED
    provider(connected, clock=lambda: later).token()
    assert connected.row().generation == 2


def test_threads_of_one_process_refresh_once(connected: World) -> None:
    """Ten threads with an expired token: one refresh, all get the same new token."""
    later = utcnow() + timedelta(hours=2)
    got: list[str] = []
    start = threading.Barrier(10)

    def call() -> None:
        start.wait()
        got.append(provider(connected, clock=lambda: later).token())

    threads = [threading.Thread(target=call) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 10 and len(set(got)) == 1 and refreshes(connected) == 1


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.slept = 0

    def __call__(self) -> datetime:
        return self.now


def test_a_lease_whose_holder_died_expires(connected: World) -> None:
    """SQLite: a lease left by a killed refresher blocks others only until it expires; then one refreshes."""
    clock = Clock(utcnow() + timedelta(hours=2))
    with connected.engine.begin() as conn:
        conn.execute(
            update(connections).values(lease_token="dead", lease_until=clock.now + timedelta(seconds=60))
        )

    def sleep(seconds: float) -> None:
        clock.slept += 1
        clock.now += timedelta(seconds=15)

    connected.settings.oauth.refresh_wait_s = 3600
    provider(connected, clock=clock, sleep=sleep).token()
    assert 4 <= clock.slept <= 5 and refreshes(connected) == 1
    assert connected.row().lease_token is None and connected.row().generation == 2


def test_a_waiter_takes_the_holders_result(connected: World) -> None:
    """SQLite: while another holds the lease, a caller waits and uses the pair the holder stores."""
    clock = Clock(utcnow() + timedelta(hours=2))
    with connected.engine.begin() as conn:
        conn.execute(
            update(connections).values(lease_token="busy", lease_until=clock.now + timedelta(seconds=60))
        )
    box = connected.box

    def holder_finishes(seconds: float) -> None:
        with connected.engine.begin() as conn:
            conn.execute(
                update(connections).values(
                    access_token=box.seal("at_from_holder"),
                    expires_at=clock.now + timedelta(hours=1),
                    generation=2,
                    lease_token=None,
                    lease_until=None,
                )
            )

    assert provider(connected, clock=clock, sleep=holder_finishes).token() == "at_from_holder"
    assert token_requests(connected) == 1  # the code exchange only


def test_tokens_sealed_with_an_old_key_are_read_after_a_rotation_and_rekeyed(
    connected: World, monkeypatch: pytest.MonkeyPatch, token_keys: str
) -> None:
    """Add a key in front: the old tokens still open; rekey reseals them so the old key can go."""
    new = new_key()
    monkeypatch.setenv(TOKEN_KEYS_VAR, f"{new},{token_keys}")
    assert client(connected).call("GET", "/api/me").status == 200
    counts = connections_module.rekey(connected.engine, connected.box, "cli:test")
    assert counts == {"connections": 1, "states": 1}
    row = connected.row()
    assert SecretBox([new]).open(row.access_token) and SecretBox([new]).open(row.refresh_token)
    with pytest.raises(ReauthorizationRequired, match="cannot be opened"):
        SecretBox([token_keys]).open(row.access_token)
    monkeypatch.setenv(TOKEN_KEYS_VAR, new)
    assert client(connected).call("GET", "/api/me").status == 200
