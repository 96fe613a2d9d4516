"""A realistic `message_created` event, shaped like Chatwoot's documented webhook payload."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson

from connectors.base import Options, SignedRequest
from connectors.chatwoot.verify import SCHEME


def sign(
    body: bytes, headers: Mapping[str, str], secret: str, now: float, options: Options | None = None
) -> SignedRequest:
    return SignedRequest(body=body, headers=SCHEME.sign(body, headers, secret, now))


def sample(secret: str, now: float, options: Options | None = None) -> SignedRequest:
    when = datetime.fromtimestamp(int(now) - 1, UTC)
    conversation_id = random.randint(1, 99999)
    body = orjson.dumps(
        {
            "id": random.randint(1, 10**7),
            "content": "Hi, my parcel for order #1042 has not arrived yet.",
            "created_at": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "message_type": "incoming",
            "content_type": "text",
            "private": False,
            "content_attributes": {},
            "source_id": None,
            "sender": {"id": 14, "name": "little-haze-776", "avatar": "", "type": "contact"},
            "inbox": {"id": 1, "name": "Acme Support"},
            "conversation": {
                "can_reply": True,
                "channel": "Channel::WebWidget",
                "id": conversation_id,
                "inbox_id": 1,
                "contact_inbox": {
                    "id": 12,
                    "contact_id": 14,
                    "inbox_id": 1,
                    "source_id": "405f1d30-1af3-4fa0-8ffd-11ea3f86101e",
                },
                "meta": {
                    "sender": {"id": 14, "name": "little-haze-776", "type": "contact"},
                    "assignee": {"id": 1, "name": "John", "type": "user"},
                },
                "status": "open",
                "unread_count": 1,
                "timestamp": int(now) - 1,
            },
            "account": {"id": 1, "name": "Acme Inc"},
            "event": "message_created",
        }
    )
    headers = {"Content-Type": "application/json", "X-Chatwoot-Delivery": str(uuid.uuid4())}
    return sign(body, headers, secret, now)
