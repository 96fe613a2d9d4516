"""One bad delivery never hurts its neighbours, on the production stack (real uvicorn, PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select, text

from connectors.base import SignedRequest
from events.db import events
from tests.integration.harness import Stack

pytestmark = pytest.mark.integration


def poisoned(stack: Stack, i: int) -> SignedRequest:
    """Every 100th delivery carries an event id the database refuses; every 100th+50 an over-long topic.
    Neither header is covered by Shopify's signature, so anyone holding one delivery can send these."""
    req = stack.sample("shop", "shopify")
    if i % 100 == 0:
        req.headers["X-Shopify-Event-Id"] = f"poison-{i}"
    elif i % 100 == 50:
        req.headers["X-Shopify-Topic"] = "orders/" + "x" * 400
    return req


def test_500_concurrent_deliveries_with_10_poisoned_refuse_exactly_those(pg_stack: Stack) -> None:
    """Given a database that refuses some rows (a CHECK) and deliveries whose type cannot fit its
    column, 500 concurrent deliveries answer exactly the 10 guilty ones with 400 and store the rest."""
    with pg_stack.engine.begin() as conn:
        conn.execute(
            text("ALTER TABLE events ADD CONSTRAINT no_poison CHECK (dedupe_key NOT LIKE '%poison%')")
        )
    pg_stack.start_web()
    requests = [poisoned(pg_stack, i) for i in range(500)]

    async def send_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=pg_stack.url, timeout=60, limits=limits) as client:
            return await asyncio.gather(
                *(client.post("/webhooks/shop", content=r.body, headers=r.headers) for r in requests)
            )

    responses = asyncio.run(send_all())
    outcome = Counter((r.status_code, r.json().get("error")) for r in responses)
    assert outcome == {(200, None): 490, (400, "unstorable"): 5, (400, "invalid_type"): 5}
    refused = sorted(i for i, r in enumerate(responses) if r.status_code == 400)
    assert refused == list(range(0, 500, 50))
    with pg_stack.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 490
