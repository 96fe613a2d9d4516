"""Retries, dead letters and replay on the real stack: PostgreSQL, Redis, uvicorn, celery worker."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any

import httpx
import orjson
import pytest
import redis
from sqlalchemy import select

from connectors import registry
from events.db import attempts
from tests.integration.downstream import Downstream, running
from tests.integration.harness import Stack, wait_for

pytestmark = pytest.mark.integration


def forwarding(stack: Stack, downstream: Downstream, retry: str) -> None:
    stack.write_config(
        {"shop": "shopify"},
        extra={"shop": f'retry = {{ {retry} }}\n[sources.shop.forward]\nurl = "{downstream.url}"\n'},
    )


def send(stack: Stack, n: int, email: str = "jon@example.com") -> list[str]:
    """Post n distinct signed orders (concurrently); return their event ids."""
    shopify = registry.get("shopify")

    def one(_: int) -> str:
        req = stack.sample("shop", "shopify")
        body = orjson.loads(req.body)
        body["email"] = email
        req = shopify.sign(orjson.dumps(body), req.headers, stack.secrets["shop"], 0)
        resp = stack.post("shop", req)
        assert resp.status_code == 200, resp.text
        return resp.json()["ids"][0]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def outcomes(stack: Stack, event_id: str) -> list[str]:
    with stack.engine.connect() as conn:
        return [
            r.outcome
            for r in conn.execute(
                select(attempts).where(attempts.c.event_id == event_id).order_by(attempts.c.number)
            )
        ]


def test_transient_failures_then_success_apply_once(server_stack: Stack) -> None:
    """Downstream fails 3 times then accepts: one effect, 4 attempts recorded, waits within the policy."""

    def flaky(key: str, attempt: int, body: Any) -> tuple[int, dict[str, str]]:
        return (503, {}) if attempt <= 3 else (200, {})

    with running(Downstream(rule=flaky)) as downstream:
        forwarding(server_stack, downstream, "max_attempts = 6, base_s = 0.5, cap_s = 1.0")
        server_stack.start_web()
        server_stack.start_worker()
        ids = send(server_stack, 3)
        server_stack.wait_all_done(3, timeout=90)
        assert dict(downstream.applied) == dict.fromkeys(ids, 1)
        assert {k: v for k, v in downstream.log.items()} == {i: [503, 503, 503, 200] for i in ids}
    with server_stack.engine.connect() as conn:
        for event_id in ids:
            rows = list(
                conn.execute(
                    select(attempts).where(attempts.c.event_id == event_id).order_by(attempts.c.number)
                )
            )
            assert [r.outcome for r in rows] == ["retry", "retry", "retry", "done"]
            assert [r.error_class for r in rows[:3]] == ["TransientError"] * 3
            # each wait is at most the cap plus one relay interval (1 s) and scheduling slack
            gaps = [(b.started_at - a.started_at).total_seconds() for a, b in pairwise(rows)]
            assert all(0 <= g <= 1.0 + 1.0 + 3.0 for g in gaps), gaps


def test_poison_event_is_dead_lettered_while_others_flow(server_stack: Stack) -> None:
    """An event downstream always refuses with 503 dies after max attempts; the rest are processed."""

    def poison(key: str, attempt: int, body: Any) -> tuple[int, dict[str, str]]:
        return (503, {}) if body["payload"]["email"] == "poison@example.com" else (200, {})

    with running(Downstream(rule=poison)) as downstream:
        forwarding(server_stack, downstream, "max_attempts = 3, base_s = 0.2, cap_s = 0.5")
        server_stack.start_web()
        server_stack.start_worker()
        [bad] = send(server_stack, 1, email="poison@example.com")
        good = send(server_stack, 5)
        server_stack.wait_all_done(5, timeout=60)
        wait_for(lambda: server_stack.states().get("dead") == 1, timeout=60, what="the poison event dead")
        assert dict(downstream.applied) == dict.fromkeys(good, 1)
    letters = server_stack.cli("dlq", "list")
    assert [(d["event_id"], d["attempts"], d["error_class"]) for d in letters] == [(bad, 3, "TransientError")]
    assert outcomes(server_stack, bad) == ["retry", "retry", "dead"]
    shown = server_stack.cli("dlq", "show", bad)
    assert "503" in shown["error_message"] and "Traceback" in shown["traceback"]
    assert len(shown["attempt_log"]) == 3


def test_pending_retries_survive_worker_kill_and_redis_flush(pg_stack: Stack, redis_url: str) -> None:
    """Retries wait in the database: kill -9 the worker and flush Redis, each still happens once."""

    def throttled(key: str, attempt: int, body: Any) -> tuple[int, dict[str, str]]:
        return (429, {"Retry-After": "5"}) if attempt == 1 else (200, {})

    with running(Downstream(rule=throttled)) as downstream:
        forwarding(pg_stack, downstream, "max_attempts = 5")
        pg_stack.start_web()
        victim = pg_stack.start_worker()
        ids = send(pg_stack, 10)
        wait_for(lambda: pg_stack.states().get("retry") == 10, timeout=60, what="10 retries pending")
        victim.kill(signal.SIGKILL)
        redis.Redis.from_url(redis_url).flushdb()
        pg_stack.start_worker()
        pg_stack.wait_all_done(10, timeout=90)
        assert dict(downstream.applied) == dict.fromkeys(ids, 1)
        assert dict(downstream.requests) == dict.fromkeys(ids, 2)  # the first try and one retry each
    assert all(outcomes(pg_stack, i) == ["retry", "done"] for i in ids)


def test_bulk_replay_of_500_dead_letters_applies_each_once(pg_stack: Stack) -> None:
    """500 dead letters replayed in bulk are processed once each; replaying them again does nothing."""
    downstream = Downstream(rule=lambda key, attempt, body: (400, {}))  # refuses: permanent
    with running(downstream):
        forwarding(pg_stack, downstream, "max_attempts = 3")
        pg_stack.start_web()
        pg_stack.start_worker(concurrency=2)
        ids = send(pg_stack, 500)
        wait_for(
            lambda: pg_stack.states().get("dead") == 500,
            timeout=180,
            what=f"500 dead letters (states {pg_stack.states()})",
        )
        assert pg_stack.cli("dlq", "replay", "--where", "--source", "shop", "--dry-run")["planned"] == 500
        downstream.rule = lambda key, attempt, body: (200, {})  # the downstream is fixed
        assert pg_stack.cli("dlq", "replay", "--where", "--source", "shop", "--rate", "400", "--yes") == {
            "replayed": 500,
            "skipped": 0,
        }
        pg_stack.wait_all_done(500, timeout=180)
        nothing = {"planned": 0, "by_vendor": {}, "first": []}
        assert pg_stack.cli("dlq", "replay", "--where", "--source", "shop", "--yes") == nothing
        assert pg_stack.cli("dlq", "replay", *ids[:3], "--yes") == nothing
        assert dict(downstream.applied) == dict.fromkeys(ids, 1)
    assert sorted(pg_stack.record_versions())[:500] == [1] * 500


def test_operator_api_refuses_missing_wrong_and_read_only_tokens(pg_stack: Stack) -> None:
    """Through the real ingress process: 401 without or with a wrong token, 403 for read on write."""
    pg_stack.start_web()
    read = pg_stack.cli("tokens", "create", "--name", "dashboard", "--scope", "read")["token"]
    write = pg_stack.cli("tokens", "create", "--name", "oncall", "--scope", "write")["token"]
    url = f"{pg_stack.url}/v1/dead-letters"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer hy_nope"}).json()["error"] == "unauthorized"
    assert httpx.get(url, headers={"Authorization": f"Bearer {read}"}).json() == {"total": 0, "items": []}
    replay = {"where": {"source": "shop"}, "dry_run": True}
    denied = httpx.post(f"{url}/replay", json=replay, headers={"Authorization": f"Bearer {read}"})
    assert (denied.status_code, denied.json()["error"]) == (403, "forbidden")
    allowed = httpx.post(f"{url}/replay", json=replay, headers={"Authorization": f"Bearer {write}"})
    assert allowed.json() == {"planned": 0, "event_ids": []}
    assert "/dead-letters/{event_id}" in httpx.get(f"{pg_stack.url}/v1/openapi.json").json()["paths"]
