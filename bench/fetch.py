"""A burst of webhooks about few objects: how many API fetches it costs (`python -m bench --only fetch`).

The fake Shopify (a real uvicorn process, `tests/fakes/shopify.py`) holds ORDERS orders, each changed
once just before the burst. Then UPDATES signed `orders/updated` webhooks go through Hookyard's
ingress, round-robin over the orders, from 8 threads: each order's webhooks announce a series of
versions that ends at the one the API now holds (as a burst of real updates would). The source
fetches `orders` with a WINDOW_S coalescing window; one worker (2 processes, with beat) processes the
events and runs the fetches. Reported:

- **fetches**: the requests the fake answered (only fetches call it), against the goal of one per
  order plus one per coalescing window the burst spanned;
- the asks and fetches by outcome (`hookyard_fetches_total`: scheduled, coalesced, skipped as a
  version already read, fetched), from the web app's /metrics;
- **settle**: seconds from the first webhook sent until every order's record is the API's copy and
  no fetch is pending.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text

from bench.procs import wait_for
from bench.stack import PY, Stack
from bench.sync import TOKEN, fake_shopify
from connectors import registry
from events.db import object_fetches, records

ORDERS, UPDATES, WINDOW_S = 50, 1000, 10.0
GRAPHQL = "POST /admin/api/{version}/graphql.json"


def _configure(stack: Stack, fake_url: str | None) -> None:
    """The bench source, with (or without) its API and fetch blocks."""
    config = stack.root / "hookyard.toml"
    base = config.read_text().split("[sources.shop.api]", 1)[0]
    if fake_url is not None:
        base += (
            f'[sources.shop.api]\nbase_url = "{fake_url}"\ntoken = "{TOKEN}"\n'
            f'[sources.shop.fetch]\nstreams = ["orders"]\nwindow = "{WINDOW_S:g}s"\n'
        )
    config.write_text(base)


def _webhooks(stack: Stack, orders: list[dict[str, Any]]) -> list[tuple[bytes, dict[str, str]]]:
    """UPDATES signed orders/updated requests, round-robin over the orders; each order's versions
    climb one second at a time to the one the API holds."""
    shopify = registry.get("shopify")
    per_order = math.ceil(UPDATES / len(orders))
    out = []
    for n in range(UPDATES):
        order = orders[n % len(orders)]
        step = n // len(orders)
        version = datetime.fromtimestamp(int(order["updated"]), UTC) - timedelta(seconds=per_order - 1 - step)
        sample = shopify.sample(stack.secret, time.time())
        body = orjson.loads(sample.body)
        body.update(
            id=int(order["id"].rsplit("/", 1)[-1]),
            email=f"update-{step}@example.com",
            updated_at=version.isoformat(),
        )
        headers = {**sample.headers, "X-Shopify-Topic": "orders/updated", "X-Shopify-Event-Id": f"burst-{n}"}
        signed = shopify.sign(orjson.dumps(body), headers, stack.secret, time.time())
        out.append((signed.body, dict(signed.headers)))
    return out


def _settled(stack: Stack, truth: dict[str, str]) -> bool:
    with stack.engine.connect() as conn:
        emails = dict(
            conn.execute(
                select(records.c.external_id, records.c.data["email"].as_string()).where(
                    records.c.kind == "order"
                )
            ).all()
        )
        open_fetches = conn.execute(
            select(func.count()).select_from(object_fetches).where(object_fetches.c.state != "done")
        ).scalar_one()
    return open_fetches == 0 and all(emails.get(k) == v for k, v in truth.items())


def _outcomes(exposition: str) -> dict[str, int]:
    """hookyard_fetches_total summed by outcome."""
    found: dict[str, int] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "hookyard_fetches_total":
                outcome = sample.labels["outcome"]
                found[outcome] = found.get(outcome, 0) + int(sample.value)
    return found


def run(stack: Stack, *, log: Any) -> dict[str, Any]:
    with fake_shopify(ORDERS, stack.root) as fake_url:
        _configure(stack, fake_url)
        stack.reset_data()
        with stack.engine.begin() as conn:
            conn.execute(text("TRUNCATE object_fetches"))
        try:
            for number in range(ORDERS):
                httpx.post(
                    f"{fake_url}/_fake/mutate",
                    json={
                        "collection": "orders",
                        "id": 1001 + number,
                        "set": {"email": f"final-{number}@example.com"},
                    },
                ).raise_for_status()
            orders = httpx.get(f"{fake_url}/_fake/objects/orders").json()
            truth = {o["id"].rsplit("/", 1)[-1]: o["attrs"]["email"] for o in orders}
            requests = _webhooks(stack, orders)
            web, port = stack.start_hookyard_web()
            worker = stack.spawn(
                "hookyard-worker-fetch", [PY, "-m", "ops.cli", "worker", "--concurrency", "2", "--beat"]
            )
            wait_for(lambda: b"ready." in worker.log.read_bytes(), timeout=60, what="the worker")
            before = httpx.get(f"{fake_url}/_fake/stats").json()["requests"]
            url = f"http://127.0.0.1:{port}/webhooks/shop"
            with httpx.Client(timeout=30) as client, ThreadPoolExecutor(8) as pool:
                began = time.perf_counter()
                answers = list(
                    pool.map(lambda r: client.post(url, content=r[0], headers=r[1]).status_code, requests)
                )
                burst_s = time.perf_counter() - began
                wait_for(
                    lambda: _settled(stack, truth), timeout=300, what="every order fetched", interval=0.1
                )
                settle_s = time.perf_counter() - began
            stats = httpx.get(f"{fake_url}/_fake/stats").json()
            outcomes = _outcomes(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
            stack.stop(worker)
            stack.stop(web)
        finally:
            _configure(stack, None)
    with stack.engine.connect() as conn:
        rows = conn.execute(
            select(object_fetches.c.state, func.count()).group_by(object_fetches.c.state)
        ).all()
    fetches = stats["requests"] - before
    windows = math.ceil(burst_s / WINDOW_S)
    result = {
        "orders": ORDERS,
        "updates": UPDATES,
        "window_s": WINDOW_S,
        "accepted": sum(1 for status in answers if status == 200),
        "burst_s": round(burst_s, 2),
        "windows": windows,
        "fetches": fetches,
        "goal": ORDERS + windows,
        "settle_s": round(settle_s, 2),
        "fetch_rows": dict(rows),
        "outcomes": outcomes,
        "violations": stats["violations"],
    }
    log(
        f"  {UPDATES} updates on {ORDERS} orders in {result['burst_s']} s: {fetches} fetches "
        f"(goal <= {result['goal']}), settled in {result['settle_s']} s"
    )
    return result
