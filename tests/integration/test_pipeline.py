"""End to end: real uvicorn ingress, real celery worker and beat, real databases and brokers."""

from __future__ import annotations

import base64
import signal
import time

import httpx
import orjson
import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from events.db import events
from tests.integration.harness import Stack, wait_for

pytestmark = pytest.mark.integration


def queued_ids(client: redis.Redis, queue: str) -> list[str]:
    """The event ids waiting in a Celery queue on Redis (each message carries a list of them)."""
    ids = []
    for raw in client.lrange(queue, 0, -1):
        args = orjson.loads(base64.b64decode(orjson.loads(raw)["body"]))[0]
        ids.extend(args[0])
    return ids


def test_signed_webhooks_are_processed(stack: Stack) -> None:
    """Given a running system, signed deliveries are answered 200 and end up processed with records."""
    stack.start_web()
    stack.start_worker()
    for _ in range(10):
        resp = stack.post("shop", stack.sample("shop", "shopify"))
        assert resp.status_code == 200, resp.text
        assert resp.json()["accepted"] == 1 and resp.json()["duplicates"] == 0
    stack.wait_all_done(10)
    assert stack.states() == {"done": 10}
    versions = stack.record_versions()
    assert len(versions) == 11  # ten orders and the one customer they share
    assert sorted(versions)[:10] == [1] * 10


def test_duplicate_delivery_is_one_event_and_one_effect(stack: Stack) -> None:
    """The same delivery posted twice is accepted twice but stored and applied once."""
    stack.start_web()
    stack.start_worker()
    req = stack.sample("shop", "shopify")
    first, second = stack.post("shop", req), stack.post("shop", req)
    assert first.status_code == second.status_code == 200
    assert (first.json()["accepted"], first.json()["duplicates"]) == (1, 0)
    assert (second.json()["accepted"], second.json()["duplicates"]) == (0, 1)
    stack.wait_all_done(1)
    time.sleep(1.5)  # time for any stray second processing to show itself
    with stack.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 1
    assert sorted(stack.record_versions()) == [1, 1]  # the order and its customer, each applied once


def test_bad_signature_is_401_and_stores_nothing(pg_stack: Stack) -> None:
    """A forged request is refused with a JSON reason, a metric, and no row."""
    pg_stack.start_web()
    req = pg_stack.sample("shop", "shopify")
    req.headers["X-Shopify-Hmac-Sha256"] = "AAAA" + req.headers["X-Shopify-Hmac-Sha256"][4:]
    resp = pg_stack.post("shop", req)
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_signature"
    assert pg_stack.states() == {}
    metrics = httpx.get(f"{pg_stack.url}/metrics").text
    assert (
        'hookyard_ingress_requests_total{reason="invalid_signature",source="shop",status="401"} 1.0'
        in metrics
    )


def test_refusals_have_status_codes_and_reasons(pg_stack: Stack) -> None:
    """Unknown source 404, wrong content type 415, too large 413, unparsable body 400; nothing stored."""
    pg_stack.start_web(HOOKYARD_INGRESS__MAX_BODY_BYTES="2000")
    req = pg_stack.sample("shop", "shopify")
    assert pg_stack.post("nope", req).json()["error"] == "unknown_source"
    assert pg_stack.post("nope", req).status_code == 404
    plain = dict(req.headers, **{"Content-Type": "text/plain"})
    assert httpx.post(f"{pg_stack.url}/webhooks/shop", content=req.body, headers=plain).status_code == 415
    big = httpx.post(f"{pg_stack.url}/webhooks/shop", content=b"{" + b" " * 3000 + b"}", headers=req.headers)
    assert (big.status_code, big.json()["error"]) == (413, "too_large")
    from connectors.signing import b64_digest

    garbage = b"not json"
    headers = dict(
        req.headers, **{"X-Shopify-Hmac-Sha256": b64_digest(pg_stack.secrets["shop"].encode(), garbage)}
    )
    bad = httpx.post(f"{pg_stack.url}/webhooks/shop", content=garbage, headers=headers)
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_json")
    assert pg_stack.states() == {}


def test_database_down_answers_503_with_retry_after(pg_stack: Stack) -> None:
    """When nothing can be committed, the vendor is told to retry: 503 + Retry-After, never 2xx."""
    pg_stack.start_web(HOOKYARD_DATABASE_URL="postgresql://postgres@127.0.0.1:9/none")
    resp = pg_stack.post("shop", pg_stack.sample("shop", "shopify"))
    assert resp.status_code == 503
    assert resp.json()["error"] == "cannot_persist"
    assert int(resp.headers["retry-after"]) > 0


def test_broker_down_at_ingress_events_are_relayed(server_stack: Stack) -> None:
    """Events accepted while the ingress cannot reach the broker are published later by the relay."""
    nowhere = make_url(server_stack.broker_url).set(host="127.0.0.1", port=9)
    server_stack.start_web(HOOKYARD_BROKER_URL=nowhere.render_as_string(hide_password=False))
    for _ in range(5):
        assert server_stack.post("shop", server_stack.sample("shop", "shopify")).status_code == 200
    assert server_stack.states() == {"accepted": 5}
    server_stack.start_worker()
    server_stack.wait_all_done(5, timeout=60)


def test_worker_sigkill_mid_processing_still_exactly_once(server_stack: Stack) -> None:
    """A worker killed while holding leases: the relay re-drives the events, each applied once."""
    server_stack.start_web()
    victim = server_stack.start_worker(HOOKYARD_WORKER__FAULT_DELAY_S="30")
    for _ in range(4):
        assert server_stack.post("shop", server_stack.sample("shop", "shopify")).status_code == 200
    wait_for(lambda: server_stack.states().get("processing", 0) >= 2, timeout=30, what="events in processing")
    victim.kill(signal.SIGKILL)
    server_stack.start_worker()
    server_stack.wait_all_done(4, timeout=90)
    with server_stack.engine.connect() as conn:
        attempts = [a for (a,) in conn.execute(select(events.c.attempts))]
    assert max(attempts) >= 2  # some were claimed by the killed worker first
    versions = server_stack.record_versions()
    assert sorted(versions)[:4] == [1, 1, 1, 1]  # every order applied exactly once


def test_redis_flushed_while_queued_relay_recovers_all(pg_stack: Stack, redis_url: str) -> None:
    """Messages lost with a flushed Redis: the database still has the events, the relay resends them."""
    pg_stack.start_web()
    for _ in range(30):
        assert pg_stack.post("shop", pg_stack.sample("shop", "shopify")).status_code == 200
    client = redis.Redis.from_url(redis_url)
    wait_for(lambda: len(queued_ids(client, "hookyard.shopify")) == 30, timeout=60, what="30 queued ids")
    client.flushdb()
    assert queued_ids(client, "hookyard.shopify") == []
    pg_stack.start_worker()
    pg_stack.wait_all_done(30, timeout=60)
    assert sorted(pg_stack.record_versions())[:30] == [1] * 30
