"""A delivery signed as the source's options describe, with its ids where the options look for them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from connectors.base import SignedRequest
from connectors.generic_hmac.verify import scheme
from connectors.payloads import pointer_tokens


def sign(
    body: bytes, headers: Mapping[str, str], secret: str, now: float, options: Mapping[str, Any] | None = None
) -> SignedRequest:
    return SignedRequest(body=body, headers=scheme(options or {}).sign(body, headers, secret, now))


def _place(document: dict[str, Any], path: str, value: Any) -> None:
    """Set the value a JSON pointer designates, creating objects on the way."""
    *parents, last = pointer_tokens(path) or [""]
    for token in parents:
        document = document.setdefault(token, {})
    document[last] = value


def sample(secret: str, now: float, options: Mapping[str, Any] | None = None) -> SignedRequest:
    options = options or {"header": "X-Signature"}
    delivery = str(uuid.uuid4())
    when = datetime.fromtimestamp(int(now), UTC).isoformat()
    document: dict[str, Any] = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "order.created",
        "created_at": when,
        "data": {"order_id": "1042", "total": "49.90", "currency": "EUR"},
    }
    if isinstance(options.get("dedupe_pointer"), str) and options["dedupe_pointer"]:
        _place(document, options["dedupe_pointer"], delivery)
    if isinstance(options.get("type_pointer"), str) and options["type_pointer"]:
        _place(document, options["type_pointer"], "order.created")
    headers = {"Content-Type": "application/json"}
    for name in ("dedupe_header", "id_header"):
        if options.get(name):
            headers[str(options[name])] = delivery
    return sign(orjson.dumps(document), headers, secret, now, options)
