"""A realistic payment_intent.succeeded event, shaped like Stripe's documented Event object."""

from __future__ import annotations

import secrets as random_ids
from collections.abc import Mapping

import orjson

from connectors.base import Options, SignedRequest
from connectors.signing import hex_digest
from connectors.stripe.verify import signed_payload


def sign(
    body: bytes, headers: Mapping[str, str], secret: str, now: float, options: Options | None = None
) -> SignedRequest:
    """Stripe re-signs every attempt with a fresh `t`."""
    timestamp = str(int(now))
    signature = hex_digest(secret.encode(), signed_payload(timestamp, body))
    return SignedRequest(body=body, headers={**headers, "Stripe-Signature": f"t={timestamp},v1={signature}"})


def _id(prefix: str) -> str:
    return f"{prefix}_{random_ids.token_hex(12)}"


def sample(secret: str, now: float, options: Options | None = None) -> SignedRequest:
    created = int(now) - 2
    intent = _id("pi")
    body = orjson.dumps(
        {
            "id": _id("evt"),
            "object": "event",
            "api_version": "2024-06-20",
            "created": created,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": _id("req"), "idempotency_key": random_ids.token_hex(16)},
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "id": intent,
                    "object": "payment_intent",
                    "amount": 2000,
                    "amount_received": 2000,
                    "currency": "usd",
                    "customer": "cus_NffrFeUfNV2Hib",
                    "description": "Order #1042",
                    "latest_charge": _id("ch"),
                    "payment_method": "pm_1MtHbELkdIwHu7ixl4OzzPMv",
                    "payment_method_types": ["card"],
                    "status": "succeeded",
                    "created": created - 5,
                    "metadata": {"order_id": "1042"},
                }
            },
        },
        option=orjson.OPT_INDENT_2,
    )
    return sign(
        body,
        {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        },
        secret,
        now,
    )
