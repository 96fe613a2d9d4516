"""A realistic Events API `app_mention` callback, shaped like Slack's documented example."""

from __future__ import annotations

import random
import secrets as random_ids
from collections.abc import Mapping

import orjson

from connectors.base import Options, SignedRequest
from connectors.slack.verify import SCHEME


def sign(
    body: bytes, headers: Mapping[str, str], secret: str, now: float, options: Options | None = None
) -> SignedRequest:
    """Slack signs each attempt with that attempt's timestamp; retries keep the event_id."""
    return SignedRequest(body=body, headers=SCHEME.sign(body, headers, secret, now))


def sample(secret: str, now: float, options: Options | None = None) -> SignedRequest:
    ts = f"{int(now) - 1}.{random.randint(0, 999999):06d}"
    body = orjson.dumps(
        {
            "token": "XXYYZZ",
            "team_id": "T123ABC456",
            "api_app_id": "A123ABC456",
            "event": {
                "type": "app_mention",
                "user": "U123ABC456",
                "text": "<@U0LAN0Z89> order #1042 was charged twice, can someone check?",
                "ts": ts,
                "channel": "C123ABC456",
                "event_ts": ts,
            },
            "type": "event_callback",
            "authed_users": ["U0LAN0Z89"],
            "event_id": "Ev" + random_ids.token_hex(5).upper(),
            "event_time": int(now) - 1,
        }
    )
    return sign(
        body,
        {"Content-Type": "application/json", "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"},
        secret,
        now,
    )
