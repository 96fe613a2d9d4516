"""Builders shared by the rules tests: an order event, its records, rule files and conditions."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rules.conditions import Condition
from rules.model import ConditionModel
from schemas.envelope import Envelope
from schemas.records import Customer, Money, Order, Record

ENV = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXX"}


def event(**changes: Any) -> Envelope:
    """A Shopify order.created event whose payload has one value of every kind the tests need."""
    payload = {
        "total_price": "500.00",
        "subtotal": 499.99,
        "precise": "499.999999999999999",
        "tenth": 0.1,
        "count": 3,
        "flag": True,
        "note": "Leave at the door",
        "tags": ["vip", "wholesale"],
        "nums": [1, 2, "3"],
        "created_at": "2024-05-01T12:00:00+00:00",
        "naive": "2024-05-01T12:00:00",
        "nan": "NaN",
        "nothing": None,
        "customer": {"email": "ada@example.com", "orders_count": "7"},
        "line_items": [{"price": "10.00"}],
    }
    fields: dict[str, Any] = {
        "id": "ev_1",
        "source": "shop",
        "vendor": "shopify",
        "type": "order.created",
        "dedupe_key": "acme:orders/create:1",
        "occurred_at": datetime(2024, 5, 1, 12, tzinfo=UTC),
        "received_at": datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC),
        "headers": {"x-shopify-shop-domain": "acme.myshopify.com"},
        "payload": payload,
    }
    return Envelope(**{**fields, **changes})


def records(amount: str = "500.00") -> list[Record]:
    """The order (with no email) and its customer, as the Shopify connector would normalize them."""
    return [
        Order(
            external_id="1001",
            number="#1001",
            total=Money(amount=Decimal(amount), currency="usd"),
            created_at=datetime(2024, 5, 1, 12, tzinfo=UTC),
        ),
        Customer(external_id="c1", email="ada@example.com", name="Ada"),
    ]


def condition(inline: str) -> Condition:
    """A condition written as a TOML inline table, parsed as the loader parses rule files."""
    raw = tomllib.loads(f"c = {inline}", parse_float=Decimal)["c"]
    return ConditionModel.model_validate(raw).compile()


def rule_text(name: str = "big-orders", *, types: str = '["order.created"]', extra: str = "") -> str:
    """A valid rule file; `extra` is appended at top level before the tables."""
    return (
        f'name = "{name}"\n{extra}\n'
        f"[when]\ntypes = {types}\n"
        'all = [{ path = "records.order.total.amount", op = "gt", value = 499 }]\n'
        '[[actions]]\ntype = "event.tag"\ntags = ["big", "{{ source }}"]\n'
        '[[actions]]\ntype = "slack.post"\nwebhook_url = "${SLACK_WEBHOOK_URL}"\n'
        'text = "Order {{ records.order.number }} for {{ records.order.total|money }}"\n'
    )


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path
