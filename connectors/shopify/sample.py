"""A realistic orders/create delivery, shaped like Shopify's documented example."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson

from connectors.base import Options, SignedRequest
from connectors.signing import b64_digest


def sign(
    body: bytes, headers: Mapping[str, str], secret: str, now: float, options: Options | None = None
) -> SignedRequest:
    """Shopify signs the body alone, so a retry carries the same signature."""
    signature = b64_digest(secret.encode(), body)
    return SignedRequest(body=body, headers={**headers, "X-Shopify-Hmac-Sha256": signature})


def sample(secret: str, now: float, options: Options | None = None) -> SignedRequest:
    order_id = random.randint(10**17, 10**18)
    when = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
    body = orjson.dumps(
        {
            "id": order_id,
            "name": f"#{random.randint(1000, 9999)}",
            "order_number": random.randint(1000, 9999),
            "email": "jon@example.com",
            "created_at": when,
            "updated_at": when,
            "currency": "USD",
            "total_price": "199.65",
            "financial_status": "paid",
            "customer": {
                "id": 115310627314723954,
                "email": "jon@example.com",
                "first_name": "Jon",
                "last_name": "Snow",
                "updated_at": when,
            },
            "line_items": [
                {
                    "id": 866550311766439020,
                    "title": "IPod Nano - 8GB",
                    "quantity": 1,
                    "price": "199.00",
                    "sku": "IPOD2008BLACK",
                }
            ],
        }
    )
    return sign(
        body,
        {
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Shop-Domain": "example.myshopify.com",
            "X-Shopify-API-Version": "2026-10",
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Event-Id": str(uuid.uuid4()),
            "X-Shopify-Triggered-At": when,
        },
        secret,
        now,
    )
