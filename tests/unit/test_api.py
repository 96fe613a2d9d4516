"""The operator API in process: tokens, scopes, JSON errors, dead-letter operations, audit."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, func, insert, select
from starlette.applications import Starlette
from starlette.routing import Mount

from events.db import EventState, audit_log, events, source_flags, utcnow
from events.ids import new_event_id
from events.sources import Source
from ops import tokens
from ops.api import create_api
from workers import processing


class Client:
    """A synchronous face on the ASGI app (each call runs its own event loop)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await c.request(method, path, **kwargs)

        return asyncio.run(call())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)


SENT: list[tuple[str, str]] = []


def record_publish(batch: list[tuple[str, str]]) -> int:
    SENT.extend(batch)
    return len(batch)


@pytest.fixture
def client(engine: Engine) -> Client:
    SENT.clear()
    return Client(Starlette(routes=[Mount("/v1", app=create_api(engine, {}, publish=record_publish))]))


def token(engine: Engine, scope: str) -> dict[str, str]:
    with engine.begin() as conn:
        return {"Authorization": f"Bearer {tokens.create(conn, f'{scope}-bot', scope)}"}


def dead_event(engine: Engine) -> str:
    """A Stripe payment whose currency no schema accepts: processed once, dead-lettered."""
    now = utcnow()
    payload = {
        "id": "evt_1",
        "type": "payment_intent.succeeded",
        "created": 1_800_000_000,
        "data": {
            "object": {
                "id": "pi_1",
                "object": "payment_intent",
                "amount": 500,
                "amount_received": 500,
                "currency": "dollars",
                "status": "succeeded",
            }
        },
    }
    event_id = new_event_id(now.timestamp())
    with engine.begin() as conn:
        conn.execute(
            insert(events).values(
                id=event_id,
                source="payments",
                vendor="stripe",
                type="payment.succeeded",
                dedupe_key="evt_1",
                state=EventState.ACCEPTED,
                attempts=0,
                received_at=now,
                available_at=now,
                relay_at=now,
                relayed=0,
                headers={},
                body=orjson.dumps(payload),
                payload=payload,
            )
        )
    ctx = processing.Context(sources={}, lease_s=30)
    assert processing.process(engine, event_id, ctx) == processing.Outcome.DEAD
    return event_id


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer hy_wrong"}, {"Authorization": "Basic x"}])
def test_missing_or_wrong_token_is_401_json(client: Client, headers: dict[str, str]) -> None:
    """No token, an unknown one or another scheme: 401 with a JSON reason."""
    resp = client.get("/v1/dead-letters", headers=headers)
    assert resp.status_code == 401
    assert resp.json()["error"] == "unauthorized"


def test_read_only_token_reads_but_cannot_write(client: Client, engine: Engine) -> None:
    """A read token lists dead letters; replay, edit and purge answer 403."""
    event_id = dead_event(engine)
    read = token(engine, "read")
    listed = client.get("/v1/dead-letters", headers=read)
    assert listed.status_code == 200
    assert [i["event_id"] for i in listed.json()["items"]] == [event_id]
    for method, path, body in [
        ("POST", "/v1/dead-letters/replay", {"ids": [event_id]}),
        ("PATCH", f"/v1/dead-letters/{event_id}", {"set": {"a": 1}}),
        ("POST", "/v1/dead-letters/purge", {"older_than": "1d"}),
    ]:
        resp = client.request(method, path, json=body, headers=read)
        assert (resp.status_code, resp.json()["error"]) == (403, "forbidden"), path


def test_revoked_token_is_refused(client: Client, engine: Engine) -> None:
    """A revoked token stops working at once."""
    with engine.begin() as conn:
        raw = tokens.create(conn, "temp", "read")
        token_id = tokens.listing(conn)[0]["id"]
        tokens.revoke(conn, token_id)
    assert client.get("/v1/dead-letters", headers={"Authorization": f"Bearer {raw}"}).status_code == 401


def test_edit_validates_then_replay_requeues_and_both_are_audited(client: Client, engine: Engine) -> None:
    """An edit that still fails is refused (422); a fixing edit is saved; replay moves the event on."""
    event_id = dead_event(engine)
    write = token(engine, "write")
    bad = client.patch(
        f"/v1/dead-letters/{event_id}", json={"set": {"data.object.currency": "xx"}}, headers=write
    )
    assert (bad.status_code, bad.json()["error"]) == (422, "invalid_payload")
    good = client.patch(
        f"/v1/dead-letters/{event_id}", json={"set": {"data.object.currency": "usd"}}, headers=write
    )
    assert good.status_code == 200
    assert good.json()["payload"]["data"]["object"]["currency"] == "usd"
    shown = client.get(f"/v1/dead-letters/{event_id}", headers=write).json()
    assert shown["original_payload"]["data"]["object"]["currency"] == "dollars"
    dry = client.post(
        "/v1/dead-letters/replay", json={"where": {"vendor": "stripe"}, "dry_run": True}, headers=write
    )
    assert dry.json() == {"planned": 1, "event_ids": [event_id]}
    with engine.connect() as conn:
        assert conn.execute(select(events.c.state)).scalar_one() == "dead"  # a dry run changes nothing
    replay = client.post("/v1/dead-letters/replay", json={"ids": [event_id]}, headers=write)
    assert replay.json() == {"planned": 1, "replayed": 1, "skipped": 0}
    again = client.post("/v1/dead-letters/replay", json={"ids": [event_id]}, headers=write)
    assert again.json() == {"planned": 0, "replayed": 0, "skipped": 0}
    assert [(event_id, "stripe")] == SENT
    with engine.connect() as conn:
        actions = [a for (a,) in conn.execute(select(audit_log.c.action).order_by(audit_log.c.id))]
        assert conn.execute(select(events.c.state)).scalar_one() == "accepted"
        assert conn.execute(select(func.count()).select_from(audit_log)).scalar_one() == 2
    assert actions == ["dlq.edit", "dlq.replay"]


def test_openapi_document_is_served(client: Client) -> None:
    """The API describes itself without a token."""
    doc = client.get("/v1/openapi.json").json()
    assert "/dead-letters/replay" in doc["paths"]


def test_flagged_source_is_shown_and_cleared_by_a_writer(engine: Engine) -> None:
    """A source flagged for re-authorization shows in /v1/sources; only a write token clears it."""
    sources = {"shop": Source("shop", "shopify", ("s",))}
    api = create_api(engine, sources, publish=record_publish)
    client = Client(Starlette(routes=[Mount("/v1", app=api)]))
    with engine.begin() as conn:
        conn.execute(
            insert(source_flags).values(
                source="shop", needs_reauth=True, reason="401 from vendor", flagged_at=utcnow()
            )
        )
    read, write = token(engine, "read"), token(engine, "write")
    [shop] = client.get("/v1/sources", headers=read).json()
    assert (shop["name"], shop["needs_reauth"], shop["reason"]) == ("shop", True, "401 from vendor")
    assert client.request("DELETE", "/v1/sources/shop/flag", headers=read).status_code == 403
    assert client.request("DELETE", "/v1/sources/shop/flag", headers=write).status_code == 200
    assert client.get("/v1/sources", headers=read).json()[0]["needs_reauth"] is False
    again = client.request("DELETE", "/v1/sources/shop/flag", headers=write)
    assert (again.status_code, again.json()["error"]) == (404, "not_found")
    with engine.connect() as conn:
        assert conn.execute(select(audit_log.c.action)).scalars().all()[-1] == "sources.clear_flag"


def test_purge_needs_a_selector_and_a_confirmation(client: Client, engine: Engine) -> None:
    """{} deletes nothing (400 nothing_selected); a selection of 3 waits for confirm: true (400
    confirmation_required, nothing deleted); a dry run says how many; confirmed, exactly those go."""
    from tests.unit.test_dlq import add_dead

    ids = add_dead(engine, 3)
    write = token(engine, "write")
    empty = client.post("/v1/dead-letters/purge", json={}, headers=write)
    assert (empty.status_code, empty.json()["error"]) == (400, "nothing_selected")
    selected = {"where": {"source": "shop"}}
    unconfirmed = client.post("/v1/dead-letters/purge", json=selected, headers=write)
    assert (unconfirmed.status_code, unconfirmed.json()["error"]) == (400, "confirmation_required")
    assert "3 dead letters" in unconfirmed.json()["detail"]
    dry = client.post("/v1/dead-letters/purge", json={**selected, "dry_run": True}, headers=write)
    assert dry.json() == {"planned": 3}
    with engine.connect() as conn:
        assert sorted(r for (r,) in conn.execute(select(events.c.state))) == ["dead"] * 3
    done = client.post("/v1/dead-letters/purge", json={**selected, "confirm": True}, headers=write)
    assert done.json() == {"purged": 3}
    with engine.connect() as conn:
        assert {i: s for i, s in conn.execute(select(events.c.id, events.c.state))} == dict.fromkeys(
            ids, "purged"
        )


def test_bulk_replay_waits_for_a_confirmation(client: Client, engine: Engine) -> None:
    """Replaying two or more dead letters by filter needs confirm: true, as the CLI needs --yes."""
    from tests.unit.test_dlq import add_dead

    add_dead(engine, 2)
    write = token(engine, "write")
    refused = client.post("/v1/dead-letters/replay", json={"where": {}}, headers=write)
    assert (refused.status_code, refused.json()["error"]) == (400, "confirmation_required")
    assert SENT == []
    done = client.post("/v1/dead-letters/replay", json={"where": {}, "confirm": True}, headers=write)
    assert done.json()["replayed"] == 2
