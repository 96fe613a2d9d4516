"""Shopify topics → canonical types and records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Delivery, Options, Parsed
from connectors.payloads import (
    body_hash,
    decimal_or_none,
    items,
    load_object,
    money,
    obj,
    parse_time,
    text,
    validated,
)
from schemas.envelope import Envelope
from schemas.errors import MalformedError
from schemas.records import Customer, Order, Record, Refund

TOPICS = {
    "orders/create": "order.created",
    "orders/updated": "order.updated",
    "orders/paid": "order.paid",
    "orders/cancelled": "order.cancelled",
    "customers/create": "customer.created",
    "customers/update": "customer.updated",
    "refunds/create": "refund.created",
}


def _header(headers: Mapping[str, str], name: str) -> str:
    return headers.get(f"x-shopify-{name}") or headers.get(f"shopify-{name}") or ""


def parse(body: bytes, headers: Mapping[str, str], options: Options) -> Parsed:
    payload = load_object(body)
    topic = _header(headers, "topic") or text(payload.get("topic"))
    if not topic:
        raise MalformedError("missing X-Shopify-Topic header", code="missing_header")
    shop = _header(headers, "shop-domain")
    # One merchant action shares an event id across deliveries; several subscriptions to one
    # topic each deliver it, so the topic is part of the key.
    event_id = _header(headers, "event-id") or _header(headers, "webhook-id") or body_hash(body)
    return Parsed(
        deliveries=[
            Delivery(
                dedupe_key=f"{shop}:{topic}:{event_id}",
                type=TOPICS.get(topic, f"shopify.{topic}"),
                payload=payload,
                occurred_at=parse_time(_header(headers, "triggered-at")),
            )
        ]
    )


def _customer(data: Any) -> Customer | None:
    data = obj(data)
    if text(data.get("id")) is None:
        return None
    name = " ".join(p for p in (text(data.get("first_name")), text(data.get("last_name"))) if p) or None
    return Customer(
        external_id=text(data["id"]),
        email=text(data.get("email")),
        name=name,
        updated_at=parse_time(data.get("updated_at")),
    )


@validated
def normalize(envelope: Envelope) -> list[Record]:
    data = obj(envelope.payload)
    external_id = text(data.get("id"))
    if external_id is None:
        return []
    if envelope.type.startswith("order."):
        customer = _customer(data.get("customer"))
        order = Order(
            external_id=external_id,
            number=text(data.get("name")) or text(data.get("order_number")),
            email=text(data.get("email")),
            total=money(data.get("total_price"), data.get("currency")),
            financial_status=text(data.get("financial_status")),
            created_at=parse_time(data.get("created_at")),
            updated_at=parse_time(data.get("updated_at")),
            customer_id=customer.external_id if customer else None,
        )
        return [order, customer] if customer else [order]
    if envelope.type.startswith("customer."):
        customer = _customer(data)
        return [customer] if customer else []
    if envelope.type == "refund.created":
        transactions = [obj(t) for t in items(data.get("transactions"))]
        amounts = [decimal_or_none(t.get("amount")) for t in transactions]
        currency = next((t.get("currency") for t in transactions if t.get("currency")), None)
        total = money(sum((a for a in amounts if a is not None), 0), currency)
        if total is None:
            return []
        return [
            Refund(
                external_id=external_id,
                amount=total,
                payment_id=text(data.get("order_id")),
                created_at=parse_time(data.get("created_at")),
            )
        ]
    return []
