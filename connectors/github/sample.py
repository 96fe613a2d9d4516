"""A realistic `issues` `opened` delivery, shaped like GitHub's documented webhook payload."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson

from connectors.base import Options, SignedRequest
from connectors.github.verify import SCHEME


def sign(
    body: bytes, headers: Mapping[str, str], secret: str, now: float, options: Options | None = None
) -> SignedRequest:
    """GitHub signs the body alone; a redelivery keeps the body, signature and delivery id."""
    return SignedRequest(body=body, headers=SCHEME.sign(body, headers, secret, now))


def sample(secret: str, now: float, options: Options | None = None) -> SignedRequest:
    when = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    number = random.randint(1, 9999)
    user = {"login": "octocat", "id": 1, "type": "User", "html_url": "https://github.com/octocat"}
    body = orjson.dumps(
        {
            "action": "opened",
            "issue": {
                "url": f"https://api.github.com/repos/octocat/Hello-World/issues/{number}",
                "id": random.randint(10**9, 10**10),
                "number": number,
                "title": "Checkout fails with a 500 on Safari",
                "user": user,
                "labels": [{"id": 208045946, "name": "bug", "color": "f29513"}],
                "state": "open",
                "assignee": None,
                "comments": 0,
                "created_at": when,
                "updated_at": when,
                "body": "Steps to reproduce: add any item to the cart, then pay with Apple Pay.",
            },
            "repository": {
                "id": 1296269,
                "name": "Hello-World",
                "full_name": "octocat/Hello-World",
                "private": False,
                "owner": user,
            },
            "sender": user,
        }
    )
    return sign(
        body,
        {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/044aadd",
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "292430182",
            "X-GitHub-Hook-Installation-Target-Type": "repository",
            "X-GitHub-Hook-Installation-Target-ID": "1296269",
        },
        secret,
        now,
    )
