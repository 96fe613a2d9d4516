"""Builders for the rules-and-actions integration tests: rules beside a stack, big orders, runs."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
from sqlalchemy import select

from connectors import registry
from events.db import action_runs
from tests.integration.harness import HOOKYARD, Stack

HOOK_PATH = "/services/T0FAKE/B0FAKE/fakesecret"  # the fake Slack's default incoming webhook


def big_orders(name: str = "big-orders", *, extra: str = "", text: str | None = None) -> str:
    """Shopify orders over $500 → the Slack webhook in ${SLACK_WEBHOOK_URL}."""
    message = text or "Order {{ records.order.external_id }}: {{ records.order.total|money }}"
    return (
        f'name = "{name}"\n{extra}\n[when]\ntypes = ["order.created"]\nvendors = ["shopify"]\n'
        'all = [{ path = "records.order.total.amount", op = "gt", value = 500 }]\n'
        f'[[actions]]\ntype = "slack.post"\nwebhook_url = "${{SLACK_WEBHOOK_URL}}"\ntext = "{message}"\n'
    )


def with_rules(stack: Stack, rules: dict[str, str], env: dict[str, str] | None = None) -> None:
    """Rule files in <root>/rules, `rules_dir` in the sources file, variables in the secrets file."""
    folder = stack.root / "rules"
    folder.mkdir(exist_ok=True)
    for name, text in rules.items():
        (folder / f"{name}.toml").write_text(text)
    config = stack.root / "hookyard.toml"
    if not config.read_text().startswith("rules_dir"):
        config.write_text('rules_dir = "rules"\n' + config.read_text())
    with (stack.root / "secrets.env").open("a") as fh:
        fh.writelines(f"{key}={value}\n" for key, value in (env or {}).items())


def order(stack: Stack, total: str) -> Any:
    """A signed Shopify orders/create for `total` USD (a fresh order and delivery id each time)."""
    request = stack.sample("shop", "shopify")
    body = orjson.loads(request.body)
    body["total_price"] = total
    return registry.get("shopify").sign(orjson.dumps(body), request.headers, stack.secrets["shop"], 0)


def send_orders(stack: Stack, totals: Iterable[str]) -> list[str]:
    """Post orders concurrently over one client; their event ids, in the order of `totals`."""
    with httpx.Client(base_url=stack.url, timeout=30) as client:

        def one(total: str) -> str:
            request = order(stack, total)
            resp = client.post("/webhooks/shop", content=request.body, headers=request.headers)
            assert resp.status_code == 200, resp.text
            return str(resp.json()["ids"][0])

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, totals))


def runs(stack: Stack) -> list[Any]:
    with stack.engine.connect() as conn:
        return list(conn.execute(select(action_runs).order_by(action_runs.c.created_at)))


def republish(stack: Stack, run_ids: list[str]) -> None:
    """Send action ids to the actions queue again, as a broker redelivery or a relay would."""
    code = f"from events.queue import publish_actions; publish_actions({run_ids!r})"
    subprocess.run([HOOKYARD[0], "-c", code], cwd=stack.root, env=stack.env(), check=True, timeout=60)
