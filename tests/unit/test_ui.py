"""The dashboard in process (SQLite, no broker): login with a token, the session cookie, CSRF on every
form, read-only tokens, dead-letter edit and replay audited as ui:<name>, the bulk confirmation, the
live JSON and the pages that have nothing to show yet."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, insert, select, update
from starlette.applications import Starlette
from starlette.routing import Mount
from structlog.testing import capture_logs

from events.db import action_runs, api_tokens, audit_log, events, sync_cursors
from events.settings import UiSettings
from events.sources import Source
from ops import tokens
from ops.ui.app import create_ui
from ops.ui.session import LOGIN_COOKIE, SESSION_COOKIE, Signer
from tests.unit.test_dlq import add_dead

SOURCES = {"shop": Source(name="shop", connector="shopify", secrets=())}


class TestClient:
    """A browser-like client of an ASGI app: keeps cookies, follows no redirects."""

    __test__ = False

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cookies = httpx.Cookies()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver", cookies=self.cookies
            ) as client:
                response = await client.request(method, path, **kwargs)
                self.cookies = client.cookies
                return response

        return asyncio.run(call())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


@pytest.fixture
def published() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def client(engine: Engine, published: list[tuple[str, str]]) -> Iterator[TestClient]:
    """The dashboard mounted at /ui, as the web app mounts it."""

    def publish(items: list[tuple[str, str]]) -> int:
        published.extend(items)
        return len(items)

    ui = create_ui(engine, SOURCES, UiSettings(), publish, depths=None)
    yield TestClient(Starlette(routes=[Mount("/ui", app=ui)]))


def token(engine: Engine, scope: str = "write", name: str = "oncall") -> str:
    with engine.begin() as conn:
        return tokens.create(conn, name, scope)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def log_in(client: TestClient, raw: str) -> str:
    """Log in through the form; the session's CSRF token."""
    form = client.get("/ui/login")
    resp = client.post("/ui/login", data={"csrf": csrf_of(form.text), "token": raw, "next": "/ui/events"})
    assert resp.status_code == 303 and resp.headers["location"] == "/ui/events"
    return csrf_of(client.get("/ui/").text)


def rejections(reason: str) -> float:
    return REGISTRY.get_sample_value("hookyard_ui_rejections_total", {"reason": reason}) or 0.0


def test_pages_need_a_session_and_login_sets_a_strict_http_only_cookie(
    client: TestClient, engine: Engine
) -> None:
    """Without a session a page redirects to the login; a wrong token is refused; the right one
    gives an HttpOnly, SameSite=Strict cookie scoped to /ui."""
    first = client.get("/ui/sources")
    assert first.status_code == 303 and first.headers["location"].startswith("/ui/login?next=")
    form = client.get("/ui/login")
    assert "HttpOnly" in form.headers["set-cookie"]
    wrong = client.post("/ui/login", data={"csrf": csrf_of(form.text), "token": "hy_nope"})
    assert wrong.status_code == 401 and "unknown or revoked token" in wrong.text
    form = client.get("/ui/login")
    resp = client.post("/ui/login", data={"csrf": csrf_of(form.text), "token": token(engine)})
    cookie = resp.headers["set-cookie"]
    assert resp.status_code == 303 and SESSION_COOKIE in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert client.get("/ui/sources").status_code == 200


def test_the_login_form_itself_needs_its_csrf_token(client: TestClient, engine: Engine) -> None:
    """A login POST without the pre-session cookie's CSRF token is refused 403."""
    client.get("/ui/login")
    resp = client.post("/ui/login", data={"token": token(engine)})
    assert resp.status_code == 403 and resp.json()["error"] == "csrf"
    client.cookies.delete(LOGIN_COOKIE)
    other = Signer(lambda: b"another key").login_token()[0]
    assert client.post("/ui/login", data={"csrf": other, "token": token(engine)}).status_code == 403


def test_posts_without_a_session_or_the_csrf_field_are_refused_with_a_log_line_and_a_metric(
    client: TestClient, engine: Engine
) -> None:
    """No session cookie: 403 no_session; a session but no csrf field, or a wrong one: 403 csrf.
    Each is a ui.rejected line and a count; nothing is replayed."""
    (event_id,) = add_dead(engine, 1)
    before = rejections("no_session"), rejections("csrf")
    with capture_logs() as logs:
        anonymous = client.post(f"/ui/dead-letters/{event_id}/replay", data={"csrf": "x"})
    assert anonymous.status_code == 403 and anonymous.json()["error"] == "no_session"
    assert {"event": "ui.rejected", "reason": "no_session"}.items() <= logs[0].items()
    log_in(client, token(engine))
    missing = client.post(f"/ui/dead-letters/{event_id}/replay", data={})
    forged = client.post(f"/ui/dead-letters/{event_id}/replay", data={"csrf": "guess"})
    assert (missing.status_code, forged.status_code) == (403, 403)
    assert missing.json() == {"error": "csrf", "detail": "the form's CSRF token is missing or wrong"}
    assert (rejections("no_session"), rejections("csrf")) == (before[0] + 1, before[1] + 2)
    with engine.connect() as conn:
        assert conn.execute(select(events.c.state)).scalar_one() == "dead"


def test_edit_and_replay_from_the_page_are_audited_as_the_token(
    client: TestClient, engine: Engine, published: list[tuple[str, str]]
) -> None:
    """An edit that still does not validate is refused (422) and not saved; one that validates is;
    a replay moves the event back to accepted and publishes it; both audited as ui:<token name>."""
    (event_id,) = add_dead(engine, 1)
    csrf = log_in(client, token(engine, name="alice"))
    page = client.get(f"/ui/dead-letters/{event_id}")
    assert page.status_code == 200 and event_id in page.text
    bad = client.post(f"/ui/dead-letters/{event_id}/edit", data={"csrf": csrf, "sets": "no equals sign"})
    assert bad.status_code == 422 and "expected PATH=VALUE" in bad.text
    good = client.post(f"/ui/dead-letters/{event_id}/edit", data={"csrf": csrf, "sets": "note=checked"})
    assert good.status_code == 303
    replay = client.post(f"/ui/dead-letters/{event_id}/replay", data={"csrf": csrf})
    assert replay.status_code == 303 and replay.headers["location"].startswith(f"/ui/events/{event_id}")
    assert published == [(event_id, "shopify")]
    with engine.connect() as conn:
        assert conn.execute(select(events.c.state, events.c.payload)).one() == (
            "accepted",
            {"note": "checked"},
        )
        actions = [(r.actor, r.action) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))]
    assert actions == [("ui:alice", "dlq.edit"), ("ui:alice", "dlq.replay")]


def test_bulk_replay_asks_first_and_a_read_token_cannot_write(
    client: TestClient, engine: Engine, published: list[tuple[str, str]]
) -> None:
    """Replaying several shows how many and waits for confirm=yes; a read token is refused 403."""
    add_dead(engine, 3)
    csrf = log_in(client, token(engine))
    ask = client.post("/ui/dead-letters/replay", data={"csrf": csrf, "source": "shop"})
    assert ask.status_code == 200 and "Replay 3 dead letters?" in ask.text and published == []
    done = client.post("/ui/dead-letters/replay", data={"csrf": csrf, "source": "shop", "confirm": "yes"})
    assert done.status_code == 303 and len(published) == 3
    client.cookies.clear()
    reader_csrf = log_in(client, token(engine, "read", "viewer"))
    refused = client.post("/ui/dead-letters/replay", data={"csrf": reader_csrf, "confirm": "yes"})
    assert refused.status_code == 403 and refused.json()["error"] == "read_only"


def test_a_revoked_token_ends_its_sessions(client: TestClient, engine: Engine) -> None:
    """The cookie stays signed, but the token behind it is checked on every request."""
    log_in(client, token(engine))
    assert client.get("/ui/").status_code == 200
    with engine.begin() as conn:
        conn.execute(update(api_tokens).values(revoked_at=api_tokens.c.created_at))
    assert client.get("/ui/").status_code == 303


def test_live_parts_and_pages_with_nothing_yet(client: TestClient, engine: Engine) -> None:
    """live.json renders the asked parts as HTML; sync and rules pages say 'none yet'; every page
    answers 200 with no CDN asset."""
    add_dead(engine, 1)
    log_in(client, token(engine))
    live = client.get("/ui/live.json", params={"parts": "sources,events,queues,nonsense"}).json()
    assert set(live["parts"]) == {"sources", "events", "queues"}
    assert 'data-source="shop"' in live["parts"]["sources"]
    for path in (
        "/ui/",
        "/ui/sources",
        "/ui/queues",
        "/ui/dead-letters",
        "/ui/events",
        "/ui/sync",
        "/ui/rules",
    ):
        page = client.get(path)
        assert page.status_code == 200, path
        assert "http://" not in page.text and "https://" not in page.text, path
    assert "none yet" in client.get("/ui/sync").text and "none yet" in client.get("/ui/rules").text
    assert client.get("/ui/static/live.js").status_code == 200


def test_signed_values_refuse_tampering_and_expiry() -> None:
    """A changed byte, another key or a passed expiry: not a session."""
    now = [1000.0]
    signer = Signer(lambda: b"k" * 32, clock=lambda: now[0])
    session, value = signer.new_session("t1", "alice", "write", ttl_s=60)
    assert signer.session(value) == session
    body, mac = value.split(".")
    assert signer.session(body[:-1] + ("A" if body[-1] != "A" else "B") + "." + mac) is None
    assert Signer(lambda: b"x" * 32, clock=lambda: now[0]).session(value) is None
    now[0] += 61
    assert signer.session(value) is None
    assert signer.session("garbage") is None and signer.session(None) is None


def test_sync_and_rule_pages_show_the_real_tables(engine: Engine) -> None:
    """The sync page lists every scheduled stream with its state and last error; the rules page
    counts each rule's actions from the action runs."""
    now = datetime.now(UTC)
    synced = {"shop": Source(name="shop", connector="shopify", secrets=(), sync={"orders": 300.0})}
    ui = create_ui(engine, synced, UiSettings(), lambda items: len(items), depths=None)
    client = TestClient(Starlette(routes=[Mount("/ui", app=ui)]))
    run = {
        "event_id": "e1",
        "source": "shop",
        "vendor": "shopify",
        "rule": "big-orders",
        "action_type": "slack.post",
        "created_at": now,
        "available_at": now,
        "relay_at": now,
        "history": [],
    }
    with engine.begin() as conn:
        conn.execute(
            insert(sync_cursors).values(source="shop", stream="customers", failures=2, last_error="HTTP 503")
        )
        conn.execute(
            insert(action_runs),
            [
                {**run, "id": "r1", "idempotency_key": "k1", "action_index": 0, "state": "done"},
                {**run, "id": "r2", "idempotency_key": "k2", "action_index": 1, "state": "dead"},
            ],
        )
    log_in(client, token(engine))
    sync_page = client.get("/ui/sync").text
    assert "shop/orders" in sync_page and "never run" in sync_page
    assert "shop/customers" in sync_page and "HTTP 503" in sync_page
    rules_page = client.get("/ui/rules").text
    cells = re.findall(r"<td>([^<]*)</td>", rules_page)
    assert cells[:2] == ["big-orders", "1"]  # matched: one event
    assert "none yet" not in rules_page
