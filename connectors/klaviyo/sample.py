"""A realistic batch of two email events, shaped like Klaviyo's system webhook documentation."""

from __future__ import annotations

import secrets as random_ids
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from connectors.base import Options, SignedRequest
from connectors.klaviyo.verify import SCHEME

WEBHOOK_ID = "01KP4928STE8FKCWB6WDHZ4ZB7"


def sign(
    body: bytes, headers: Mapping[str, str], secret: str, now: float, options: Options | None = None
) -> SignedRequest:
    return SignedRequest(body=body, headers=SCHEME.sign(body, headers, secret, now))


def _item(topic: str, metric: str, when: datetime, subject: str) -> dict[str, Any]:
    profile_id, metric_id = "01GDDKASAP8TKDDA2GRZDSVP4H", "Y6Hmxn"
    event_id = random_ids.token_hex(13).upper()
    return {
        "external_id": event_id,
        "topic": topic,
        "payload": {
            "data": {
                "type": "event",
                "id": event_id,
                "attributes": {
                    "timestamp": int(when.timestamp()),
                    "datetime": when.isoformat(),
                    "uuid": random_ids.token_hex(16),
                    "event_properties": {
                        "Subject": subject,
                        "Campaign Name": "Spring sale",
                        "$message": "01HQ4T5Y1PZJ0ZCN6JYFB2G1XW",
                        "Email Domain": "example.com",
                    },
                },
                "relationships": {
                    "profile": {"data": {"type": "profile", "id": profile_id}},
                    "metric": {"data": {"type": "metric", "id": metric_id}},
                },
            },
            "included": [
                {
                    "type": "profile",
                    "id": profile_id,
                    "attributes": {
                        "email": "sarah.mason@klaviyo-demo.com",
                        "phone_number": "+15005550006",
                        "first_name": "Sarah",
                        "last_name": "Mason",
                        "updated": when.isoformat(),
                    },
                },
                {"type": "metric", "id": metric_id, "attributes": {"name": metric}},
            ],
        },
    }


def sample(secret: str, now: float, options: Options | None = None) -> SignedRequest:
    when = datetime.fromtimestamp(int(now) - 5, UTC)
    body = orjson.dumps(
        {
            "data": [
                _item("event:klaviyo.received_email", "Received Email", when, "Spring sale starts now"),
                _item("event:klaviyo.opened_email", "Opened Email", when, "Spring sale starts now"),
            ],
            "meta": {
                "klaviyo_account_id": "XyZ123",
                "klaviyo_webhook_id": WEBHOOK_ID,
                "timestamp": when.isoformat(),
            },
        }
    )
    return sign(body, {"Content-Type": "application/json", "Klaviyo-Webhook-Id": WEBHOOK_ID}, secret, now)
