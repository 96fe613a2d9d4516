"""The web app in process: liveness, readiness, the not-migrated answer and /metrics (no services:
SQLite, and a broker probe that is told to succeed or fail)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from connectors import registry
from events.migrate import upgrade
from events.settings import Settings
from ops.web import HookyardApp

SECRET = "web-secret"


def broker_up(timeout_s: float) -> None:
    """The broker answers."""


def broker_down(timeout_s: float) -> None:
    raise ConnectionRefusedError("Error 111 connecting to redis.internal:6379")


def make_settings(tmp_path: Path, database_url: str) -> Settings:
    (tmp_path / "hookyard.toml").write_text(
        f'[sources.shop]\nconnector = "shopify"\nsecrets = ["{SECRET}"]\n'
    )
    return Settings(config=tmp_path / "hookyard.toml", secrets_file=None, database_url=database_url)


def run_app(
    settings: Settings,
    scenario: Callable[[httpx.AsyncClient], Awaitable[Any]],
    probe: Callable[[float], None] = broker_up,
) -> Any:
    """Start the app's inbox and publisher (what lifespan does), run `scenario`, stop them."""

    async def main() -> Any:
        app = HookyardApp(settings, probe=probe)
        app.publisher._send = lambda batch: len(batch)  # no broker in unit tests
        await app.inbox.start()
        await app.publisher.start()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await scenario(client)
        finally:
            await app.publisher.stop()
            await app.inbox.stop()
            await app.engine.dispose()
            app.readiness.close()
            app.sync_engine.dispose()

    return asyncio.run(main())


def signed() -> Any:
    return registry.get("shopify").sample(SECRET, time.time())


def test_unmigrated_database_is_not_ready_and_deliveries_get_503_not_migrated(tmp_path: Path) -> None:
    """/healthz stays 200 (alive); /readyz 503 names the schema; a delivery answers 503 not_migrated
    with Retry-After and the log says to run hookyard migrate; after migrating both recover."""
    url = f"sqlite:///{tmp_path}/fresh.db"
    settings = make_settings(tmp_path, url)
    req = signed()

    async def scenario(client: httpx.AsyncClient) -> Any:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
        delivery = await client.post("/webhooks/shop", content=req.body, headers=req.headers)
        return health, ready, delivery

    with capture_logs() as logs:
        health, ready, delivery = run_app(settings, scenario)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "not_ready",
        "checks": {"database": "ok", "migrations": "not_migrated", "broker": "ok"},
    }
    assert delivery.status_code == 503 and delivery.json()["error"] == "not_migrated"
    assert delivery.headers["retry-after"]
    rejected = [entry for entry in logs if entry["event"] == "ingress.rejected"]
    assert rejected[0]["reason"] == "not_migrated" and "run `hookyard migrate`" in rejected[0]["detail"]

    upgrade(url)
    ready, delivery = run_app(
        settings,
        lambda client: asyncio.gather(
            client.get("/readyz"), client.post("/webhooks/shop", content=req.body, headers=req.headers)
        ),
    )
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert delivery.status_code == 200 and delivery.json()["accepted"] == 1


def test_unreachable_database_and_broker_answer_503_without_hosts_or_credentials(tmp_path: Path) -> None:
    """Nothing listens on port 1: the body says 'unreachable' and never the host, user or password."""
    settings = make_settings(tmp_path, "postgresql://hookyard:hunter2@127.0.0.1:1/hookyard")
    req = signed()

    async def scenario(client: httpx.AsyncClient) -> Any:
        return await client.get("/readyz"), await client.post(
            "/webhooks/shop", content=req.body, headers=req.headers
        )

    ready, delivery = run_app(settings, scenario, probe=broker_down)
    assert ready.status_code == 503
    assert ready.json()["checks"] == {
        "database": "unreachable",
        "migrations": "unknown",
        "broker": "unreachable",
    }
    assert delivery.status_code == 503 and delivery.json()["error"] == "cannot_persist"
    for text in (ready.text, delivery.text):
        for secret in ("127.0.0.1", "hunter2", "hookyard:", "postgresql", "redis.internal", "6379"):
            assert secret not in text


@pytest.mark.parametrize("probe, status", [(broker_up, 200), (broker_down, 503)])
def test_readiness_follows_the_broker(tmp_path: Path, probe: Callable[[float], None], status: int) -> None:
    """A migrated database with the broker up is ready; with the broker down it is not."""
    url = f"sqlite:///{tmp_path}/ok.db"
    upgrade(url)
    ready = run_app(make_settings(tmp_path, url), lambda client: client.get("/readyz"), probe=probe)
    assert ready.status_code == status
    assert ready.json()["checks"]["broker"] == ("ok" if status == 200 else "unreachable")


def test_metrics_show_verification_failures_and_inbox_gauges(tmp_path: Path) -> None:
    """A bad signature moves the verification counter by one; /metrics also carries the inbox gauges."""
    url = f"sqlite:///{tmp_path}/m.db"
    upgrade(url)
    req = signed()
    labels = {"source": "shop", "reason": "invalid_signature"}
    before = REGISTRY.get_sample_value("hookyard_verification_failures_total", labels) or 0.0

    async def scenario(client: httpx.AsyncClient) -> Any:
        await client.post("/webhooks/shop", content=req.body, headers=req.headers)
        forged = {**req.headers, "X-Shopify-Hmac-Sha256": "AAAA"}
        refused = await client.post("/webhooks/shop", content=req.body, headers=forged)
        return refused, await client.get("/metrics")

    refused, scraped = run_app(make_settings(tmp_path, url), scenario)
    assert refused.status_code == 401
    assert REGISTRY.get_sample_value("hookyard_verification_failures_total", labels) == before + 1
    assert 'hookyard_verification_failures_total{reason="invalid_signature",source="shop"}' in scraped.text
    assert "hookyard_inbox_stats_up 1.0" in scraped.text
    assert 'hookyard_inbox_events{source="shop",state="accepted"} 1.0' in scraped.text
