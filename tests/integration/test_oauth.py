"""OAuth connections with real processes: `hookyard web` (uvicorn) and the fake provider (uvicorn),
the install flow through a redirect-following HTTP client, 20 concurrent calls from 2 OS processes
sharing one refresh, and a refresher killed with SIGKILL in the middle of its refresh."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from bench.waiting import free_port, wait_for
from events.connections import box_for
from events.db import ConnectionStatus, connections, source_flags, utcnow
from events.refresh import ConnectionTokens
from events.secretbox import TOKEN_KEYS_VAR, new_key
from events.sources import load_sources
from schemas.errors import ReauthorizationRequired
from tests.fakes.process import RunningFake
from tests.integration import oauth_workers
from tests.integration.harness import Stack

pytestmark = pytest.mark.integration

SPAWN = multiprocessing.get_context("spawn")
CLIENT = {"DEMO_CLIENT_ID": "hookyard-demo", "DEMO_CLIENT_SECRET": "demo-secret"}


def oauth_table(provider: str) -> str:
    return (
        f'[sources.NAME.oauth]\nauthorize_url = "{provider}/oauth/authorize"\n'
        f'token_url = "{provider}/oauth/token"\nrevoke_url = "{provider}/oauth/revoke"\n'
        'client_id = "${DEMO_CLIENT_ID}"\nclient_secret = "${DEMO_CLIENT_SECRET}"\n'
    )


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> str:
    """The token key and the demo client in this process's environment (spawned children inherit it)."""
    key = new_key()
    monkeypatch.setenv(TOKEN_KEYS_VAR, key)
    for name, value in CLIENT.items():
        monkeypatch.setenv(name, value)
    return key


@pytest.fixture(params=["postgres", "sqlite"])
def backend(request: pytest.FixtureRequest) -> Stack:
    """PostgreSQL (row lock) and SQLite (lease): the same single flight on both."""
    return request.getfixturevalue("pg_stack" if request.param == "postgres" else "sqlite_stack")


@dataclass
class Connected:
    stack: Stack
    fake: RunningFake
    operator: str  # a write token

    def browse(self, source: str, follow: bool = True) -> httpx.Response:
        """What a browser does after the operator opens /start: follow every redirect to the end."""
        with httpx.Client(follow_redirects=follow, timeout=30) as browser:
            headers = {"Authorization": f"Bearer {self.operator}"}
            return browser.get(f"{self.stack.url}/oauth/{source}/start", headers=headers)


Connect = Callable[..., Connected]


@pytest.fixture
def connected(keys: str, fake_vendor: Callable[..., RunningFake]) -> Iterator[Connect]:
    """A stack whose `helpdesk` (and `crm`) sources are on a fake provider: `connect(stack, fake_config)`
    runs `hookyard web`, connects helpdesk through the browser-free flow, and returns both."""

    def connect(stack: Stack, fake_config: dict[str, Any] | None = None) -> Connected:
        fake = fake_vendor("oauth", fake_config or {})
        stack.secrets.update({"helpdesk": "whsec-1", "crm": "whsec-2"})
        table = oauth_table(fake.url)
        stack.write_config(
            {"helpdesk": "zendesk", "crm": "zendesk"},
            extra={name: table.replace("NAME", name) for name in ("helpdesk", "crm")},
        )
        stack.env_extra.update({TOKEN_KEYS_VAR: keys, **CLIENT})
        port = free_port()
        stack.start_web(port=port, HOOKYARD_OAUTH__PUBLIC_URL=f"http://127.0.0.1:{port}")
        operator = stack.cli("tokens", "create", "--name", "ops", "--scope", "write")["token"]
        world = Connected(stack, fake, operator)
        answer = world.browse("helpdesk")
        assert answer.status_code == 200, answer.text
        return world

    yield connect


def row(stack: Stack, source: str = "helpdesk") -> Any:
    with stack.engine.connect() as conn:
        return conn.execute(select(connections).where(connections.c.source == source)).first()


def expire(stack: Stack, fake: RunningFake) -> None:
    """The access token is expired for both sides."""
    fake.control.expire_access()
    with stack.engine.begin() as conn:
        conn.execute(update(connections).values(expires_at=utcnow() - timedelta(seconds=1)))


def test_the_install_flow_through_real_processes(keys: str, sqlite_stack: Stack, connected: Connect) -> None:
    """start → provider → callback on real servers: connected, listed; a replay and a state taken to
    another source's callback are refused with a clear error."""
    world = connected(sqlite_stack)
    stack, fake = world.stack, world.fake
    listed = {c["source"]: c for c in stack.cli("connections", "list")}
    assert listed["helpdesk"]["status"] == "connected" and listed["helpdesk"]["scope"] == "read"
    assert listed["crm"]["status"] == "not_connected"
    to_provider = world.browse("crm", follow=False)
    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        assert to_provider.status_code == 302 and to_provider.headers["location"].startswith(fake.url)
        callback = browser.get(to_provider.headers["location"]).headers["location"]
        stolen = browser.get(callback.replace("/oauth/crm/", "/oauth/helpdesk/"))
        assert stolen.status_code == 400 and stolen.json()["error"] == "state_source_mismatch"
        assert browser.get(callback).json()["status"] == "connected"
        replayed = browser.get(callback)
        assert replayed.status_code == 400 and replayed.json()["error"] == "state_replayed"
    assert fake.control.oauth()["exchanges"] == 2


@pytest.mark.parametrize("how", ["expired", "refused"])
def test_twenty_calls_from_two_processes_refresh_once(
    backend: Stack, connected: Connect, tmp_path: Any, how: str
) -> None:
    """An access token expired (in our records), or refused by the provider (401): 20 calls from
    2 processes at once → exactly one refresh, every call succeeds, no refresh token used twice."""
    world = connected(backend)
    stack, fake = world.stack, world.fake
    if how == "expired":
        expire(stack, fake)
    else:
        fake.control.expire_access()
    start, results = SPAWN.Barrier(2), SPAWN.Queue()
    args = (stack.database_url, str(stack.root / "hookyard.toml"), fake.url, 10, start, results)
    children = [SPAWN.Process(target=oauth_workers.calls, args=args) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
        assert child.exitcode == 0
    answers = [results.get(timeout=10) for _ in range(20)]
    assert answers == [200] * 20
    seen = fake.control.oauth()
    assert (seen["refreshes"], seen["reused_refresh_tokens"], seen["refused"]) == (1, 0, {})
    assert row(stack).generation == 2


@pytest.mark.parametrize("rotation", ["grace", "strict"])
def test_a_refresher_killed_mid_refresh(backend: Stack, connected: Connect, rotation: str) -> None:
    """SIGKILL while the provider rotates: with Shopify's grace the next caller refreshes with the old
    token and keeps the rotation; where the provider killed the old token at once, the source is
    flagged with the reason and calls stop until someone connects it again."""
    world = connected(backend, {"rotation": rotation})
    stack, fake = world.stack, world.fake
    expire(stack, fake)
    fake.control.fault("delay", "/oauth/token", delay_s=3.0)
    config = str(stack.root / "hookyard.toml")
    child = SPAWN.Process(target=oauth_workers.refresh_forever, args=(stack.database_url, config, 1.0))
    child.start()
    wait_for(
        lambda: fake.control.endpoint("POST /oauth/token")["requests"] == 2, timeout=60, what="refresh sent"
    )
    os.kill(child.pid or 0, signal.SIGKILL)
    child.join(timeout=30)
    assert child.exitcode == -signal.SIGKILL
    wait_for(lambda: fake.control.oauth()["refreshes"] == 1, timeout=30, what="the provider to rotate")
    assert row(stack).generation == 1  # the new pair never reached us
    settings = oauth_workers.settings(config, refresh_lease_s=1.0)
    source = load_sources(settings.config, settings.secrets_file)["helpdesk"]
    tokens = ConnectionTokens(stack.engine, source, box_for(settings), settings.oauth)
    if rotation == "grace":
        assert tokens.token()
        assert row(stack).generation == 2 and fake.control.oauth()["refreshes"] == 2
        expire(stack, fake)
        assert tokens.token() and fake.control.oauth()["refreshes"] == 3  # the kept pair rotates again
        return
    with pytest.raises(ReauthorizationRequired, match="refresh token already used"):
        tokens.token()
    assert row(stack).status == ConnectionStatus.NEEDS_REAUTH
    with stack.engine.connect() as conn:
        reason = conn.execute(select(source_flags.c.reason)).scalar_one()
    assert "invalid_grant" in reason and "hookyard connections connect helpdesk" in reason
    flagged = {s["name"]: s for s in stack.cli("sources", "list")}
    assert flagged["helpdesk"]["needs_reauth"] is True
    assert world.browse("helpdesk").status_code == 200  # connecting again clears it
    assert row(stack).status == ConnectionStatus.CONNECTED and tokens.token()
