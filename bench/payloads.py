"""Distinct, signed Shopify `orders/create` deliveries as raw HTTP/1.1 request bytes.

Every delivery has its own X-Shopify-Event-Id (so none is a duplicate), order id and customer id
(so the workers never fight over one hot row). Bodies are ~1.4 KB, like a small real order.
"""

from __future__ import annotations

import base64
import hmac
import itertools
import os
import uuid
from datetime import UTC, datetime

import orjson

SHOP = "bench-store.myshopify.com"
TOPIC = "orders/create"
_counter = itertools.count()
_BASE = int.from_bytes(os.urandom(4), "big") * 1_000_000  # distinct across processes and runs


def order_body(n: int, when: str) -> bytes:
    """A Shopify-shaped order; `n` makes it unique."""
    order_id = 5_000_000_000_000 + n
    items = [
        {
            "id": 10_000_000 + n * 10 + i,
            "variant_id": 40_000_000 + i,
            "title": title,
            "quantity": 1 + i % 2,
            "price": price,
            "sku": sku,
            "vendor": "Bench Supply Co",
            "requires_shipping": True,
            "taxable": True,
            "fulfillment_status": None,
        }
        for i, (title, price, sku) in enumerate(
            [
                ("Merino Wool Beanie - Charcoal", "29.00", "BNE-CH"),
                ("Organic Cotton Tee - M", "35.00", "TEE-M-ORG"),
                ("Canvas Tote Bag", "18.50", "TOTE-CNV"),
            ]
        )
    ]
    return orjson.dumps(
        {
            "id": order_id,
            "name": f"#B{n}",
            "order_number": 1000 + n,
            "email": f"buyer{n}@example.com",
            "created_at": when,
            "updated_at": when,
            "processed_at": when,
            "currency": "USD",
            "total_price": "147.43",
            "subtotal_price": "136.50",
            "total_tax": "10.93",
            "financial_status": "paid",
            "fulfillment_status": None,
            "gateway": "shopify_payments",
            "customer": {
                "id": 7_000_000_000 + n,
                "email": f"buyer{n}@example.com",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "updated_at": when,
                "orders_count": 1,
            },
            "shipping_address": {
                "first_name": "Ada",
                "last_name": "Lovelace",
                "address1": "12 Analytical Row",
                "city": "London",
                "zip": "EC1A 1BB",
                "country_code": "GB",
                "phone": None,
            },
            "line_items": items,
            "note_attributes": [{"name": "gift", "value": "no"}],
        }
    )


def _uuid() -> str:
    return str(uuid.UUID(bytes=os.urandom(16), version=4))


def signed_request(secret: bytes, host: str, path: str = "/webhooks/shop", when: str | None = None) -> bytes:
    """One new delivery, as the bytes Shopify would send on a keep-alive connection."""
    n = next(_counter) + _BASE
    when = when or datetime.now(UTC).isoformat(timespec="seconds")
    body = order_body(n, when)
    signature = base64.b64encode(hmac.digest(secret, body, "sha256")).decode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Shopify-Topic: {TOPIC}\r\n"
        f"X-Shopify-Hmac-Sha256: {signature}\r\nX-Shopify-Shop-Domain: {SHOP}\r\n"
        f"X-Shopify-API-Version: 2026-10\r\nX-Shopify-Webhook-Id: {_uuid()}\r\n"
        f"X-Shopify-Event-Id: {_uuid()}\r\nX-Shopify-Triggered-At: {when}\r\n"
        "User-Agent: Shopify-Captain-Hook\r\n\r\n"
    )
    return head.encode() + body


def split(request: bytes) -> tuple[dict[str, str], bytes]:
    """Headers and body of a request built by `signed_request` (for direct inbox preloading)."""
    head, _, body = request.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode().split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers, body
