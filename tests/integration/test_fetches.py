"""Event-driven fetches on the real stack (one per test): PostgreSQL, Redis, a celery worker with
beat, uvicorn, and the fake Zendesk API as its own process. Signed ticket webhooks go in; the worker
reads each ticket whole from the fake and the fake's request counter says how often."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from sqlalchemy import select

from connectors import registry
from connectors.keys import breaker_key
from events.db import events, object_fetches, records
from tests.fakes.process import RunningFake
from tests.integration.harness import Stack, wait_for
from tests.integration.test_syncs import SHOP_SECRET, SYNC_ENV, metric
from tests.sync_kit import source_text

pytestmark = pytest.mark.integration

WINDOW_S = 2.0
SHOW = "GET /api/v2/tickets/{id}.json"
FETCH = f'[sources.desk.fetch]\nstreams = ["tickets"]\nwindow = "{WINDOW_S:g}s"\n'


@dataclass
class System:
    stack: Stack
    desk: RunningFake
    redis: redis.Redis


@pytest.fixture
def system(
    tmp_path: Path, pg_url: str, redis_url: str, fake_vendor: Any, request: pytest.FixtureRequest
) -> Iterator[System]:
    """The stack on its own database and Redis index, and the fake Zendesk as a process; the
    processes' logs are printed when the test fails."""
    desk = fake_vendor("zendesk", {"counts": {"tickets": 20}})
    client = redis.Redis.from_url(redis_url)
    stack = Stack(root=tmp_path, database_url=pg_url, broker_url=redis_url, secrets={}, env_extra=SYNC_ENV)
    (tmp_path / "hookyard.toml").write_text(source_text("zendesk", desk.url, name="desk") + FETCH)
    (tmp_path / "secrets.env").write_text("")
    try:
        stack.start_web()
        stack.start_worker(beat=True)
        yield System(stack, desk, client)
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(stack.logs())
    finally:
        stack.close()
        client.close()


def send_ticket(stack: Stack, ticket: dict[str, Any]) -> str:
    """A signed ticket webhook announcing the ticket's current version with a partial copy (its
    subject is the webhook's own); its event id."""
    zendesk = registry.get("zendesk")
    sample = zendesk.sample(SHOP_SECRET, time.time())
    body = orjson.loads(sample.body)
    updated = datetime.fromtimestamp(ticket["updated"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body["detail"].update(id=str(ticket["id"]), subject="From the webhook", updated_at=updated)
    body["id"] = str(uuid.uuid4())
    headers = {**sample.headers, "X-Zendesk-Webhook-Invocation-Id": str(uuid.uuid4())}
    signed = zendesk.sign(orjson.dumps(body), headers, SHOP_SECRET, time.time())
    response = stack.post("desk", signed)
    assert response.status_code == 200, response.text
    (event_id,) = response.json()["ids"]
    return str(event_id)


def tickets(system: System, *numbers: int) -> list[dict[str, Any]]:
    return [t for t in system.desk.control.objects("tickets") if t["id"] in numbers]


def subjects(stack: Stack, ids: list[int]) -> dict[str, Any]:
    with stack.engine.connect() as conn:
        rows = conn.execute(
            select(records.c.external_id, records.c.data).where(
                records.c.vendor == "zendesk", records.c.external_id.in_([str(i) for i in ids])
            )
        )
        return {r.external_id: r.data["subject"] for r in rows}


def fetch_states(stack: Stack, ids: list[int]) -> dict[str, Any]:
    with stack.engine.connect() as conn:
        rows = conn.execute(
            select(object_fetches).where(object_fetches.c.object_id.in_([str(i) for i in ids]))
        )
        return {r.object_id: r for r in rows}


def event_states(stack: Stack, event_ids: list[str]) -> set[str]:
    with stack.engine.connect() as conn:
        return set(conn.execute(select(events.c.state).where(events.c.id.in_(event_ids))).scalars())


def test_a_burst_of_updates_to_few_tickets_costs_one_fetch_per_ticket_and_window(system: System) -> None:
    """Thirty webhooks about three tickets: each ticket ends up as the API's whole copy, and the fake
    answered at most one fetch per ticket plus one per coalescing window the burst spanned; every ask
    is counted as scheduled, coalesced or skipped."""
    stack, fake = system.stack, system.desk.control
    chosen = tickets(system, 1, 2, 3)
    ids = [t["id"] for t in chosen]
    asked_before = sum(
        metric(stack, "hookyard_fetches_total", outcome=o)
        for o in ("scheduled", "coalesced", "skipped_stale")
    )
    began = time.monotonic()
    sent = [send_ticket(stack, ticket) for _ in range(10) for ticket in chosen]
    elapsed = time.monotonic() - began
    truth = {str(t["id"]): t["attrs"]["subject"] for t in chosen}
    wait_for(lambda: event_states(stack, sent) == {"done"}, timeout=60, what="every webhook processed")
    wait_for(lambda: subjects(stack, ids) == truth, timeout=60, what="every ticket fetched whole")
    wait_for(
        lambda: {r.state for r in fetch_states(stack, ids).values()} == {"done"},
        timeout=60,
        what="every fetch done",
    )
    windows = math.ceil(elapsed / WINDOW_S) + 1
    assert 3 <= fake.endpoint(SHOW)["requests"] <= len(ids) + windows
    asked = sum(
        metric(stack, "hookyard_fetches_total", outcome=o)
        for o in ("scheduled", "coalesced", "skipped_stale")
    )
    assert asked - asked_before == len(sent)
    assert metric(stack, "hookyard_fetches_total", outcome="coalesced") > 0
    assert fake.stats()["violations"] == 0


def test_fetches_wait_out_an_outage_in_the_database_then_complete(system: System) -> None:
    """The fake answering 503 opens the account's breaker; the fetches wait in the database (shown
    by `sync status`), use up no attempts and nothing is dead-lettered; once the fake is back the
    breaker closes and every ticket is fetched whole."""
    stack, fake = system.stack, system.desk.control
    chosen = tickets(system, 7, 8)
    ids = [t["id"] for t in chosen]
    fake.fault("error", "/api/v2/tickets/*", status=503, count=None)
    sent = [send_ticket(stack, ticket) for ticket in chosen]
    key = breaker_key("zendesk", "desk")
    wait_for(lambda: system.redis.hget(key, "state") == b"open", timeout=60, what="the breaker open")

    def waiting() -> bool:
        rows = fetch_states(stack, ids)
        return len(rows) == 2 and all(r.state == "pending" and r.waits >= 2 for r in rows.values())

    wait_for(waiting, timeout=60, what="both fetches waiting on the breaker, twice each")
    status = next(r for r in stack.cli("sync", "status") if r["stream"] == "tickets")
    assert status["fetches"]["waiting"] == 2 and status["fetches"]["failed"] == 0
    assert all(r.attempts <= 1 for r in fetch_states(stack, ids).values())
    assert event_states(stack, sent) == {"done"}
    fake.clear_faults()
    truth = {str(t["id"]): t["attrs"]["subject"] for t in chosen}
    wait_for(lambda: subjects(stack, ids) == truth, timeout=60, what="both tickets fetched after the outage")
    assert {r.state for r in fetch_states(stack, ids).values()} == {"done"}
    assert stack.cli("dlq", "list") == []
    assert not system.redis.exists(key) or system.redis.hget(key, "state") == b"closed"
    assert fake.stats()["violations"] == 0
