"""A whole OAuth world in one process: a sources file, a migrated SQLite database, Hookyard's /oauth
and /v1 apps and the fake provider, joined by a transport that routes by port like a browser would."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from starlette.applications import Starlette
from starlette.routing import Mount

from events.connections import box_for
from events.db import connections, make_engine
from events.migrate import upgrade
from events.secretbox import TOKEN_KEYS_VAR, SecretBox, new_key
from events.settings import OAuthSettings, Settings
from events.sources import Source, load_sources
from ops import tokens
from ops.api import create_api
from ops.api_connections import connections_router
from ops.oauth_web import create_oauth_app
from tests.fakes.process import InProcessFake, InProcessTransport, in_process

PROVIDER = "http://127.0.0.1:9300"  # the fake provider's address (in process: any port 9300 request)
HOOKYARD = "http://127.0.0.1:8000"

OAUTH_TABLE = f"""
authorize_url = "{PROVIDER}/oauth/authorize"
token_url = "{PROVIDER}/oauth/token"
revoke_url = "{PROVIDER}/oauth/revoke"
client_id = "${{DEMO_CLIENT_ID}}"
client_secret = "${{DEMO_CLIENT_SECRET}}"
"""


def sources_file(tmp_path: Path, extra: str = "", names: tuple[str, ...] = ("helpdesk", "crm")) -> Path:
    """Sources with an [oauth] table on the fake provider (zendesk's defaults: PKCE, JSON bodies)."""
    text = ""
    for name in names:
        text += f'[sources.{name}]\nconnector = "zendesk"\nsecrets = ["whsec"]\n'
        text += f"[sources.{name}.oauth]\n{OAUTH_TABLE}{extra}\n"
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "hookyard.toml"
    path.write_text(text)
    return path


@pytest.fixture
def token_keys(monkeypatch: pytest.MonkeyPatch) -> str:
    """HOOKYARD_TOKEN_KEYS with one fresh key, and the demo client's credentials, in the environment."""
    key = new_key()
    monkeypatch.setenv(TOKEN_KEYS_VAR, key)
    monkeypatch.setenv("DEMO_CLIENT_ID", "hookyard-demo")
    monkeypatch.setenv("DEMO_CLIENT_SECRET", "demo-secret")
    return key


class Router(httpx.BaseTransport):
    """Requests to the provider's port go to the fake, the rest to Hookyard."""

    def __init__(self, fake: InProcessFake, hookyard: Any) -> None:
        self.fake, self.hookyard = fake.transport, InProcessTransport(hookyard)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target = self.fake if request.url.port == 9300 else self.hookyard
        return target.handle_request(request)


@dataclass
class World:
    engine: Engine
    sources: dict[str, Source]
    settings: Settings
    fake: InProcessFake
    http: httpx.Client  # Hookyard's client for the provider's token endpoint
    browser: httpx.Client  # follows redirects, like a browser; no operator token of its own
    write_token: str
    read_token: str
    opened: list[httpx.Client] = field(default_factory=list)

    @property
    def box(self) -> SecretBox:
        return box_for(self.settings)

    def start(self, source: str = "helpdesk") -> httpx.Response:
        """`/oauth/{source}/start` with the operator's write token, redirects not followed."""
        headers = {"Authorization": f"Bearer {self.write_token}"}
        return self.browser.get(f"/oauth/{source}/start", headers=headers, follow_redirects=False)

    def authorize(self, source: str = "helpdesk") -> str:
        """Start, then let the provider approve: the callback URL it sends the browser to."""
        approved = self.browser.get(self.start(source).headers["location"], follow_redirects=False)
        assert approved.status_code == 302, approved.text
        return str(approved.headers["location"])

    def connect(self, source: str = "helpdesk") -> httpx.Response:
        return self.browser.get(self.authorize(source))

    def row(self, source: str = "helpdesk") -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(connections).where(connections.c.source == source)).first()

    def close(self) -> None:
        for client in (self.http, self.browser):
            client.close()
        self.engine.dispose()


def make_world(tmp_path: Path, fake_config: dict[str, Any] | None = None, extra: str = "") -> World:
    path = sources_file(tmp_path, extra)
    settings = Settings(config=path, secrets_file=None, oauth=OAuthSettings(public_url=HOOKYARD))
    sources = load_sources(path)
    url = f"sqlite:///{tmp_path}/oauth.db"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        write, read = tokens.create(conn, "ops", "write"), tokens.create(conn, "viewer", "read")
    fake = in_process("oauth", fake_config)
    http = fake.client()
    api = create_api(engine, sources)
    api.include_router(connections_router(engine, sources, settings, http=http))
    app = Starlette(
        routes=[
            Mount("/oauth", app=create_oauth_app(engine, sources, settings, http=http)),
            Mount("/v1", app=api),
        ]
    )
    browser = httpx.Client(transport=Router(fake, app), base_url=HOOKYARD, follow_redirects=True)
    return World(engine, sources, settings, fake, http, browser, write, read)


@pytest.fixture
def world(tmp_path: Path, token_keys: str) -> Any:
    """Two sources (helpdesk, crm) on the fake provider with its defaults, nothing connected yet."""
    built = make_world(tmp_path)
    yield built
    built.close()
