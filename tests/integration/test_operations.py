"""Operations on real processes: readiness as the database, its schema and the broker come and go;
metrics summed over `web --workers 2` and a prefork worker; every log line of web, worker and beat
is JSON."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bench.waiting import free_port
from connectors import registry
from connectors.base import SignedRequest, Signer
from events.db import dead_letters
from events.queue import PROCESS_TASK, vendor_queue
from tests.conftest import PG_ADMIN_URL
from tests.integration.conftest import require_postgres
from tests.integration.harness import HOOKYARD, Stack, postgres_database, wait_for
from tests.integration.tcpproxy import TcpProxy

pytestmark = pytest.mark.integration

SOURCES = {"shop": "shopify", "payments": "stripe"}


def make_stack(root: Path, database_url: str, broker_url: str) -> Stack:
    stack = Stack(
        root=root,
        database_url=database_url,
        broker_url=broker_url,
        secrets={name: secrets.token_hex(16) for name in SOURCES},
    )
    stack.write_config(SOURCES)
    return stack


def through(proxy: TcpProxy, url: str) -> str:
    """The same URL, pointed at the proxy."""
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


def address(url: str, default_port: int) -> tuple[str, int]:
    parsed = make_url(url)
    return parsed.host or "127.0.0.1", parsed.port or default_port


@pytest.fixture
def proxied(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[tuple[Stack, TcpProxy, TcpProxy]]:
    """A stack whose database and broker are reached through proxies the test can cut."""
    db_proxy, redis_proxy = TcpProxy(address(pg_url, 5432)), TcpProxy(address(redis_url, 6379))
    db_proxy.start()
    redis_proxy.start()
    stack = make_stack(tmp_path, through(db_proxy, pg_url), through(redis_proxy, redis_url))
    yield stack, db_proxy, redis_proxy
    stack.close()
    db_proxy.stop()
    redis_proxy.stop()


def ready(stack: Stack) -> httpx.Response:
    return httpx.get(f"{stack.url}/readyz", timeout=10)


def checks_are(stack: Stack, **expected: str) -> bool:
    resp = ready(stack)
    return all(resp.json()["checks"].get(k) == v for k, v in expected.items())


def shop(stack: Stack) -> SignedRequest:
    return stack.sample("shop", "shopify")


def bad_payment(stack: Stack) -> SignedRequest:
    """A correctly signed Stripe event whose currency no schema accepts: dead-lettered at once."""
    stripe = registry.get("stripe")
    assert isinstance(stripe, Signer)
    now = time.time()
    req = stripe.sample(stack.secrets["payments"], now)
    body = orjson.loads(req.body)
    body["data"]["object"]["currency"] = "dollars"
    return stripe.sign(orjson.dumps(body), req.headers, stack.secrets["payments"], now, {})


def forged(stack: Stack) -> SignedRequest:
    req = shop(stack)
    return SignedRequest(body=req.body, headers={**req.headers, "X-Shopify-Hmac-Sha256": "AAAA"})


def test_unmigrated_database_then_migrate(tmp_path: Path, redis_url: str) -> None:
    """On a database never migrated: alive, not ready (not_migrated), deliveries 503 not_migrated with
    'run hookyard migrate' in the log; after `hookyard migrate` ready and accepting, without a restart."""
    require_postgres()
    with postgres_database(PG_ADMIN_URL, migrate=False) as url:
        stack = make_stack(tmp_path, url, redis_url)
        try:
            web = stack.start_web()
            assert httpx.get(f"{stack.url}/healthz", timeout=5).status_code == 200
            resp = ready(stack)
            assert resp.status_code == 503
            assert resp.json()["checks"] == {"database": "ok", "migrations": "not_migrated", "broker": "ok"}
            delivery = stack.post("shop", shop(stack))
            assert delivery.status_code == 503 and delivery.json()["error"] == "not_migrated"
            assert "run `hookyard migrate`" in web.log.read_text()

            subprocess.run([*HOOKYARD, "migrate"], cwd=stack.root, env=stack.env(), check=True, timeout=120)
            assert ready(stack).status_code == 200
            assert stack.post("shop", shop(stack)).status_code == 200
        finally:
            stack.close()


def test_database_down_and_back(proxied: tuple[Stack, TcpProxy, TcpProxy]) -> None:
    """PostgreSQL goes away: /readyz and deliveries answer 503 naming neither host nor port nor user;
    it comes back: both recover without a restart."""
    stack, db_proxy, _ = proxied
    stack.start_web()
    assert ready(stack).status_code == 200
    req = shop(stack)

    db_proxy.stop()
    wait_for(lambda: checks_are(stack, database="unreachable"), timeout=30, what="database unreachable")
    resp = ready(stack)
    delivery = stack.post("shop", req)
    assert resp.status_code == 503 and resp.json()["checks"]["migrations"] == "unknown"
    assert delivery.status_code == 503 and delivery.json()["error"] == "cannot_persist"
    for body in (resp.text, delivery.text):
        for secret in ("127.0.0.1", str(db_proxy.port), "postgres", "hookyard_test"):
            assert secret not in body

    db_proxy.start()
    wait_for(lambda: ready(stack).status_code == 200, timeout=30, what="ready again")
    wait_for(lambda: stack.post("shop", req).status_code == 200, timeout=30, what="accepting again")


def test_broker_down_and_back(proxied: tuple[Stack, TcpProxy, TcpProxy]) -> None:
    """Redis goes away: not ready (broker unreachable, no address in the body); it comes back: ready."""
    stack, _, redis_proxy = proxied
    stack.start_web()
    assert ready(stack).status_code == 200

    redis_proxy.stop()
    wait_for(lambda: ready(stack).status_code == 503, timeout=30, what="not ready")
    resp = ready(stack)
    assert resp.json()["checks"] == {"database": "ok", "migrations": "ok", "broker": "unreachable"}
    assert str(redis_proxy.port) not in resp.text and "redis" not in resp.text

    redis_proxy.start()
    wait_for(lambda: ready(stack).status_code == 200, timeout=30, what="ready again")


def scrape(url: str) -> dict[str, float]:
    """`name{label="v",…}` → value (labels sorted), from the Prometheus text format."""
    text = httpx.get(url, timeout=10).text
    return {
        sample.name + orjson.dumps(dict(sorted(sample.labels.items()))).decode(): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def series(name: str, **labels: str) -> str:
    return name + orjson.dumps(dict(sorted(labels.items()))).decode()


def test_metrics_add_up_over_every_process(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    """With two uvicorn processes and two prefork children, every scrape of /metrics (whichever process
    answers) shows the whole system's counts, before and after traffic; the worker's own port shows
    its processes only."""
    stack = make_stack(tmp_path, pg_url, redis_url)
    try:
        stack.start_web(workers=2)
        metrics_port = free_port()
        stack.start_worker("--metrics-port", str(metrics_port), beat=True, concurrency=2)
        before = scrape(f"{stack.url}/metrics")
        accepted = series("hookyard_ingress_requests_total", source="shop", status="200", reason="accepted")
        assert before.get(accepted, 0.0) == 0.0
        assert before[series("hookyard_inbox_events", source="shop", state="dead")] == 0.0

        for _ in range(12):
            assert stack.post("shop", shop(stack)).status_code == 200
        assert stack.post("payments", bad_payment(stack)).status_code == 200
        assert stack.post("shop", forged(stack)).status_code == 401
        wait_for(lambda: stack.states() == {"done": 12, "dead": 1}, timeout=60, what="12 done, 1 dead")
        with stack.engine.connect() as conn:
            error_class = conn.execute(select(dead_letters.c.error_class)).scalar_one()

        expected = {
            accepted: 12.0,
            series(
                "hookyard_ingress_requests_total", source="payments", status="200", reason="accepted"
            ): 1.0,
            series(
                "hookyard_ingress_requests_total", source="shop", status="401", reason="invalid_signature"
            ): 1.0,
            series("hookyard_verification_failures_total", source="shop", reason="invalid_signature"): 1.0,
            series("hookyard_end_to_end_seconds_count", source="shop"): 12.0,
            series("hookyard_processing_duration_seconds_count", source="shop", outcome="done"): 12.0,
            series("hookyard_processing_duration_seconds_count", source="payments", outcome="dead"): 1.0,
            series("hookyard_queue_wait_seconds_count", vendor="shopify"): 12.0,
            series("hookyard_queue_wait_seconds_count", vendor="stripe"): 1.0,
            series("hookyard_dead_letters_total", source="payments", error_class=error_class): 1.0,
        }

        def scraped_matches(wanted: dict[str, float]) -> bool:
            got = scrape(f"{stack.url}/metrics")
            return all(got.get(k) == v for k, v in wanted.items())

        wait_for(lambda: scraped_matches(expected), timeout=30, what=f"metrics {expected}")
        for _ in range(8):  # each scrape may be answered by either uvicorn process: the same totals
            got = scrape(f"{stack.url}/metrics")
            assert {k: got.get(k) for k in expected} == expected
        # the inbox gauges are read from the database by each web process, cached for inbox_cache_s
        inbox = {series("hookyard_inbox_events", source="payments", state="dead"): 1.0}
        wait_for(lambda: scraped_matches(inbox), timeout=30, what="the dead letter in the inbox gauges")

        own = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        assert own[series("hookyard_end_to_end_seconds_count", source="shop")] == 12.0
        assert own.get(accepted, 0.0) == 0.0  # the web processes' counts are not the worker's
    finally:
        stack.close()


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    assert lines, f"{path.name} is empty"
    parsed = []
    for number, line in enumerate(lines, 1):
        try:
            parsed.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            pytest.fail(f"{path.name} line {number} is not JSON: {line[:300]!r}")
    return parsed


def test_every_line_of_web_worker_and_beat_is_json(pg_stack: Stack) -> None:
    """Web, worker and beat as separate processes, traffic with a refusal, a dead letter and a task
    that crashes in Celery itself, then SIGTERM: every line each wrote parses as JSON."""
    stack = pg_stack
    stack.secrets["payments"] = secrets.token_hex(16)
    stack.write_config(SOURCES)
    web = stack.start_web()
    worker = stack.start_worker(beat=False)
    beat = stack.spawn("beat", "beat")
    for _ in range(3):
        assert stack.post("shop", shop(stack)).status_code == 200
    assert stack.post("payments", bad_payment(stack)).status_code == 200
    assert stack.post("shop", forged(stack)).status_code == 401
    broker = Celery(broker=stack.broker_url)
    broker.send_task(PROCESS_TASK, args=[], queue=vendor_queue("shopify"))  # missing argument: a crash
    wait_for(lambda: stack.states() == {"done": 3, "dead": 1}, timeout=60, what="3 done, 1 dead")
    wait_for(lambda: b"Sending due task" in beat.log.read_bytes(), timeout=30, what="beat scheduling")
    wait_for(lambda: b"TypeError" in worker.log.read_bytes(), timeout=30, what="the crash logged")
    stack.close()  # SIGTERM: shutdown messages are lines too

    web_lines, worker_lines, beat_lines = (json_lines(p.log) for p in (web, worker, beat))
    for entry in [*web_lines, *worker_lines, *beat_lines]:
        assert {"event", "level", "timestamp"} <= entry.keys()
    assert any(e["event"] == "ingress.rejected" and e["reason"] == "invalid_signature" for e in web_lines)
    assert any(e["event"] == "event.failed" and e.get("source") == "payments" for e in worker_lines)
    crash = [e for e in worker_lines if "TypeError" in e.get("exception", "")]
    assert crash and crash[0]["logger"] == "celery.app.trace"
    assert any(e["event"] == "worker.stopping" for e in worker_lines)
    assert any(e.get("logger") == "celery.beat" for e in beat_lines)
