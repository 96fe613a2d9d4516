"""A realistic delivery, shaped like the Standard Webhooks spec's example payload."""

from __future__ import annotations

import secrets as random_ids
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson

from connectors.base import Options, SignedRequest
from connectors.signing import b64_digest, lower_headers
from connectors.standard_webhooks.verify import key, signed_content


def sign(
    body: bytes, headers: Mapping[str, str], secret: str, now: float, options: Options | None = None
) -> SignedRequest:
    """A retry keeps `webhook-id` and is signed again with the attempt's timestamp."""
    msg_id = lower_headers(headers).get("webhook-id") or f"msg_{random_ids.token_urlsafe(18)}"
    timestamp = str(int(now))
    signature = b64_digest(key(secret), signed_content(msg_id, timestamp, body))
    return SignedRequest(
        body=body,
        headers={
            **headers,
            "webhook-id": msg_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": f"v1,{signature}",
        },
    )


def sample(secret: str, now: float, options: Options | None = None) -> SignedRequest:
    when = datetime.fromtimestamp(now, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    body = orjson.dumps(
        {
            "type": "contact.created",
            "timestamp": when,
            "data": {
                "id": str(uuid.uuid4()),
                "type": "contact",
                "email": "jane@example.com",
                "first_name": "Jane",
                "last_name": "Doe",
            },
        }
    )
    return sign(
        body,
        {"Content-Type": "application/json", "webhook-id": f"msg_{random_ids.token_urlsafe(18)}"},
        secret,
        now,
    )
