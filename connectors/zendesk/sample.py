"""A realistic ticket status change, shaped like Zendesk's documented ticket event schema."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson

from connectors.base import SignedRequest
from connectors.zendesk.options import Options
from connectors.zendesk.verify import SCHEMES


def sign(
    body: bytes, headers: Mapping[str, str], secret: str, now: float, options: Options | None = None
) -> SignedRequest:
    scheme = SCHEMES[(options or Options()).signature_order]
    return SignedRequest(body=body, headers=scheme.sign(body, headers, secret, now))


def sample(secret: str, now: float, options: Options | None = None) -> SignedRequest:
    when = datetime.fromtimestamp(int(now) - 1, UTC)
    ticket_id = str(random.randint(1000, 99999))
    body = orjson.dumps(
        {
            "account_id": 12514403,
            "detail": {
                "actor_id": "8447388090494",
                "assignee_id": "8447388090494",
                "brand_id": "8447346621310",
                "created_at": "2025-01-08T10:12:07Z",
                "description": "My order #1042 arrived damaged.",
                "external_id": None,
                "group_id": "8447346628638",
                "id": ticket_id,
                "is_public": True,
                "organization_id": "8447346623262",
                "priority": "HIGH",
                "requester_id": "8447388090495",
                "status": "OPEN",
                "subject": "Damaged item in order #1042",
                "submitter_id": "8447388090495",
                "tags": ["damaged", "vip"],
                "type": "INCIDENT",
                "updated_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "via": {"channel": "web_form"},
            },
            "event": {"current": "OPEN", "previous": "NEW"},
            "id": str(uuid.uuid4()),
            "subject": f"zen:ticket:{ticket_id}",
            "time": when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "type": "zen:event-type:ticket.status_changed",
            "zendesk_event_version": "2022-11-06",
        }
    )
    return sign(
        body,
        {
            "Content-Type": "application/json",
            "X-Zendesk-Account-Id": "12514403",
            "X-Zendesk-Webhook-Id": "01F1KRFQ6BG29CNWFR60NK5FNY",
            "X-Zendesk-Webhook-Invocation-Id": str(random.randint(10**9, 10**10)),
        },
        secret,
        now,
        options,
    )
