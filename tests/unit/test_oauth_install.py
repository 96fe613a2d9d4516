"""Connecting a source through the browser-free flow, in one process: start → the provider approves →
callback; and every way a callback is refused, each with a clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from prometheus_client import REGISTRY
from sqlalchemy import select, update
from structlog.testing import capture_logs

from connectors.oauth import new_verifier
from events.db import ConnectionStatus, audit_log, oauth_states
from events.refresh import ConnectionTokens
from tests.unit.oauth_kit import World, make_world


def refusal(world: World, response: Any, code: str) -> str:
    assert response.status_code in (400, 401, 403, 404), response.text
    body = response.json()
    assert body["error"] == code, body
    return str(body["detail"])


def audited(world: World) -> list[tuple[str, str, str | None]]:
    with world.engine.connect() as conn:
        return [
            (r.actor, r.action, r.target) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))
        ]


def installs(source: str, outcome: str, step: str = "callback") -> float:
    labels = {"source": source, "step": step, "outcome": outcome}
    return REGISTRY.get_sample_value("hookyard_oauth_installs_total", labels) or 0.0


def test_the_whole_flow_connects_the_source(world: World) -> None:
    """Following redirects from /start ends at the callback's 200; the pair is stored sealed."""
    before = installs("helpdesk", "ok")
    answer = world.connect()
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "source": "helpdesk",
        "status": "connected",
        "scope": "read",
        "expires_in_s": 3600.0,
        "refreshable": True,
    }
    row = world.row()
    issued = set(world.fake.fake.access_index)  # type: ignore[attr-defined]
    assert world.box.open(row.access_token) in issued and row.access_token not in issued
    assert row.status == ConnectionStatus.CONNECTED and row.connected_by == "web:ops" and row.generation == 1
    assert audited(world) == [
        ("web:ops", "connections.connect", "helpdesk"),
        ("web:ops", "connections.connected", "helpdesk"),
    ]
    assert installs("helpdesk", "ok") == before + 1
    authorize = parse_qs(urlsplit(world.start().headers["location"]).query)
    assert authorize["code_challenge_method"] == ["S256"] and len(authorize["code_challenge"][0]) == 43
    assert authorize["redirect_uri"] == ["http://127.0.0.1:8000/oauth/helpdesk/callback"]


def test_start_needs_an_operator_with_a_write_token(world: World) -> None:
    """No token: 401; a read token: 403; an unknown source: 404 — all JSON, nothing stored."""
    refusal(world, world.browser.get("/oauth/helpdesk/start"), "unauthorized")
    read = {"Authorization": f"Bearer {world.read_token}"}
    refusal(world, world.browser.get("/oauth/helpdesk/start", headers=read), "forbidden")
    write = {"Authorization": f"Bearer {world.write_token}"}
    refusal(world, world.browser.get("/oauth/nosuch/start", headers=write), "unknown_source")
    with world.engine.connect() as conn:
        assert conn.execute(select(oauth_states)).first() is None


def test_a_replayed_state_is_refused(world: World) -> None:
    """The callback URL used twice: the second time is state_replayed, the connection unchanged."""
    callback = world.authorize()
    assert world.browser.get(callback).status_code == 200
    before = installs("helpdesk", "state_replayed")
    detail = refusal(world, world.browser.get(callback), "state_replayed")
    assert "already used" in detail and "hookyard connections connect helpdesk" in detail
    assert world.row().generation == 1
    assert installs("helpdesk", "state_replayed") == before + 1


def test_a_state_from_another_source_is_refused(world: World) -> None:
    """crm's callback presented at helpdesk's URL is refused, and does not burn crm's state."""
    callback = world.authorize("crm")
    moved = callback.replace("/oauth/crm/callback", "/oauth/helpdesk/callback")
    detail = refusal(world, world.browser.get(moved), "state_source_mismatch")
    assert detail == "this state was issued for source 'crm', not 'helpdesk'"
    assert world.browser.get(callback).status_code == 200
    assert world.row("helpdesk") is None and world.row("crm") is not None


def test_a_forged_or_expired_state_is_refused(world: World) -> None:
    """A state whose bytes were changed, or that outlived oauth.state_ttl_s, or none at all: refused."""
    callback = world.authorize()
    name, nonce, expires, signature = parse_qs(urlsplit(callback).query)["state"][0].split(".")
    forged = callback.replace(f".{expires}.", f".{int(expires) + 3600}.")
    assert "not issued by this Hookyard" in refusal(world, world.browser.get(forged), "invalid_state")
    refusal(world, world.browser.get("/oauth/helpdesk/callback?code=x"), "invalid_state")
    world.settings.oauth.state_ttl_s = -1
    late = world.authorize()
    assert "took too long" in refusal(world, world.browser.get(late), "state_expired")
    assert world.row() is None


def test_a_wrong_verifier_is_refused(world: World) -> None:
    """A code traded with another verifier than its challenge's: the provider's invalid_grant, plainly."""
    callback = world.authorize()
    with world.engine.begin() as conn:
        conn.execute(update(oauth_states).values(verifier=world.box.seal(new_verifier())))
    detail = refusal(world, world.browser.get(callback), "exchange_refused")
    assert "invalid_grant: code_verifier does not match the code_challenge" in detail
    assert world.row() is None


def test_a_wrong_redirect_uri_is_refused(world: World, tmp_path: Path) -> None:
    """A code traded with another redirect_uri is refused; a redirect_uri the provider does not know
    stops the browser at the provider with its own error."""
    callback = world.authorize()
    with world.engine.begin() as conn:
        conn.execute(update(oauth_states).values(redirect_uri="http://127.0.0.1:8000/elsewhere"))
    detail = refusal(world, world.browser.get(callback), "exchange_refused")
    assert "redirect_uri does not match the authorization request" in detail
    other = make_world(
        tmp_path / "other", extra='redirect_uri = "https://hooks.example.com/oauth/helpdesk/callback"'
    )
    try:
        stopped = other.browser.get(other.start().headers["location"])
        assert stopped.status_code == 400
        assert stopped.json() == {
            "error": "invalid_request",
            "error_description": "redirect_uri is not registered",
        }
    finally:
        other.close()


def test_the_provider_saying_no_is_a_clear_refusal(world: World) -> None:
    """A callback carrying error=access_denied is refused with the provider's words."""
    state = parse_qs(urlsplit(world.start().headers["location"]).query)["state"][0]
    answer = world.browser.get("/oauth/helpdesk/callback", params={"state": state, "error": "access_denied"})
    assert refusal(world, answer, "provider_denied") == "the provider did not grant access (access_denied)"


def test_the_api_lists_connects_and_revokes(world: World) -> None:
    """/v1/connections: read lists, write connects (a URL) and revokes (at the provider too), audited."""
    read = {"Authorization": f"Bearer {world.read_token}"}
    write = {"Authorization": f"Bearer {world.write_token}"}
    assert world.browser.post("/v1/connections/crm/connect", headers=read).status_code == 403
    started = world.browser.post("/v1/connections/crm/connect", headers=write).json()
    assert world.browser.get(started["url"]).json()["status"] == "connected"
    listed = {c["source"]: c for c in world.browser.get("/v1/connections", headers=read).json()}
    assert listed["crm"]["status"] == "connected" and listed["crm"]["connected_by"] == "api:ops"
    assert listed["helpdesk"]["status"] == "not_connected"
    revoked = world.browser.delete("/v1/connections/crm", headers=write).json()
    assert revoked == {"source": "crm", "status": "revoked", "vendor": "revoked", "detail": None}
    assert world.fake.control.oauth()["revocations"] == 1
    assert world.browser.delete("/v1/connections/crm", headers=write).json()["error"] == "not_connected"
    assert world.row("crm").access_token is None and world.row("crm").refresh_token is None
    assert ("api:ops", "connections.revoked", "crm") in audited(world)


def test_no_token_ever_shows(world: World, tmp_path: Path) -> None:
    """Log lines, API answers, CLI output, reprs and refusals never carry a token, a code or a verifier."""
    with capture_logs() as logs:
        callback = world.authorize()
        world.browser.get(callback)
        world.browser.get(callback)  # a refusal too
        tokens = ConnectionTokens(
            world.engine, world.sources["helpdesk"], world.box, world.settings.oauth, http=world.http
        )
        world.fake.control.expire_access()
        tokens.refresh(tokens.token())
    fake = world.fake.fake
    secrets = {*fake.access_index, *fake.grants, *fake.codes, "demo-secret"}  # type: ignore[attr-defined]
    with world.engine.connect() as conn:
        verifiers = [world.box.open(v) for (v,) in conn.execute(select(oauth_states.c.verifier))]
    shown = [
        orjson.dumps(logs, default=str).decode(),
        world.browser.get("/v1/connections", headers={"Authorization": f"Bearer {world.read_token}"}).text,
        repr(tokens),
        repr(world.sources["helpdesk"]),
        cli(tmp_path, world, "connections", "list", "--json", stderr=True),
        cli(tmp_path, world, "connections", "list", stderr=True),
    ]
    assert len(secrets) >= 5 and len(logs) >= 4
    for text in shown:
        for secret in [*secrets, *verifiers]:
            assert secret not in text


def cli(tmp_path: Path, world: World, *args: str, stderr: bool = False) -> str:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_")},
        "HOOKYARD_CONFIG": str(world.settings.config),
        "HOOKYARD_DATABASE_URL": str(world.engine.url),
        "HOOKYARD_TOKEN_KEYS": os.environ["HOOKYARD_TOKEN_KEYS"],
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + (result.stderr if stderr else "")


def test_the_cli_connects_lists_revokes_and_makes_keys(world: World, tmp_path: Path) -> None:
    """`connections connect` prints a URL that completes the install; list, revoke and new-key work."""
    url = cli(tmp_path, world, "connections", "connect", "helpdesk", "--json")
    assert world.browser.get(orjson.loads(url)["url"]).json()["status"] == "connected"
    listed = orjson.loads(cli(tmp_path, world, "connections", "list", "--json"))
    assert [(c["source"], c["status"]) for c in listed] == [
        ("helpdesk", "connected"),
        ("crm", "not_connected"),
    ]
    assert listed[0]["connected_by"].startswith("cli:")
    # the provider is in this test process, out of the CLI's reach: ours is deleted all the same
    revoked = cli(tmp_path, world, "connections", "revoke", "helpdesk")
    assert "helpdesk: revoked (vendor revocation failed: token endpoint unreachable" in revoked
    assert world.row().status == ConnectionStatus.REVOKED
    assert len(cli(tmp_path, world, "connections", "new-key").splitlines()[0]) == 44
