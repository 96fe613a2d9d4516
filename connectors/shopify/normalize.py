"""Shopify topics → canonical types and records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors._payload import body_hash, decimal_or_none, load_object, parse_time
from connectors.base import Delivery, Parsed
from schemas.envelope import Envelope
from schemas.records import Customer, Money, Order, Record, Refund

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


def parse(body: bytes, headers: Mapping[str, str], options: Mapping[str, Any]) -> Parsed:
    payload = load_object(body)
    topic = _header(headers, "topic") or str(payload.get("topic") or "unknown")
    shop = _header(headers, "shop-domain")
    # One merchant action shares an event id across deliveries; several subscriptions to one
    # topic each deliver it, so the topic is part of the key.
    event_id = _header(headers, "event-id") or _header(headers, "webhook-id") or body_hash(body)
    return Parsed(deliveries=[Delivery(
        dedupe_key=f"{shop}:{topic}:{event_id}",
        type=TOPICS.get(topic, f"shopify.{topic}"),
        payload=payload,
        occurred_at=parse_time(_header(headers, "triggered-at")),
    )])


def _customer(data: Any) -> Customer | None:
    if not isinstance(data, dict) or data.get("id") is None:
        return None
    name = " ".join(p for p in (data.get("first_name"), data.get("last_name")) if p) or None
    return Customer(external_id=str(data["id"]), email=data.get("email"), name=name,
                    updated_at=parse_time(data.get("updated_at")))


def _money(amount: Any, currency: Any) -> Money | None:
    value = decimal_or_none(amount)
    if value is None or not isinstance(currency, str):
        return None
    return Money(amount=value, currency=currency)


def normalize(envelope: Envelope) -> list[Record]:
    data = envelope.payload if isinstance(envelope.payload, dict) else {}
    if data.get("id") is None:
        return []
    if envelope.type.startswith("order."):
        customer = _customer(data.get("customer"))
        order = Order(
            external_id=str(data["id"]),
            number=data.get("name") or (str(data["order_number"]) if data.get("order_number") else None),
            email=data.get("email"),
            total=_money(data.get("total_price"), data.get("currency")),
            financial_status=data.get("financial_status"),
            created_at=parse_time(data.get("created_at")),
            updated_at=parse_time(data.get("updated_at")),
            customer_id=customer.external_id if customer else None,
        )
        return [order, customer] if customer else [order]
    if envelope.type.startswith("customer."):
        customer = _customer(data)
        return [customer] if customer else []
    if envelope.type == "refund.created":
        transactions = data.get("transactions") or []
        total = sum((decimal_or_none(t.get("amount")) or 0 for t in transactions if isinstance(t, dict)), 0)
        currency = next((t.get("currency") for t in transactions if isinstance(t, dict)), None)
        money = _money(total, currency)
        if money is None:
            return []
        return [Refund(external_id=str(data["id"]), amount=money,
                       payment_id=str(data["order_id"]) if data.get("order_id") else None,
                       created_at=parse_time(data.get("created_at")))]
    return []
