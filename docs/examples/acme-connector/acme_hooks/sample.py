"""A realistic `invoice.paid` delivery, signed the way Acme signs it."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson

from acme_hooks.options import Options
from acme_hooks.verify import PREFIX, SIGNATURE, TIMESTAMP, message
from connectors.base import SignedRequest
from connectors.signing import hex_digest


def sign(
    body: bytes, headers: Mapping[str, str], secret: str, now: float, options: Options | None = None
) -> SignedRequest:
    """Each attempt is signed at its own time; a retry keeps the body and X-Acme-Delivery."""
    timestamp = str(int(now))
    signed = {k: v for k, v in headers.items() if k.lower() not in (SIGNATURE, TIMESTAMP)}
    signed["X-Acme-Timestamp"] = timestamp
    signed["X-Acme-Signature"] = PREFIX + hex_digest(secret.encode(), message(body, timestamp))
    return SignedRequest(body=body, headers=signed)


def sample(secret: str, now: float, options: Options | None = None) -> SignedRequest:
    when = datetime.fromtimestamp(int(now), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = orjson.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex[:16]}",
            "type": "invoice.paid",
            "created_at": when,
            "data": {
                "id": f"inv_{random.randint(10**5, 10**6 - 1)}",
                "amount_cents": 4250,
                "currency": "eur",
                "customer_id": "cus_8421",
                "paid_at": when,
            },
        }
    )
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Acme-Webhooks/2.1",
        "X-Acme-Delivery": str(uuid.uuid4()),
    }
    return sign(body, headers, secret, now)
