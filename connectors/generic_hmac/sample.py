"""A delivery signed as the source's options describe, with its ids where the options look for them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from connectors.base import SignedRequest
from connectors.generic_hmac.options import Options
from connectors.payloads import pointer_tokens

DEFAULT = Options(header="X-Signature")  # a source that says nothing more


def sign(
    body: bytes, headers: Mapping[str, str], secret: str, now: float, options: Options | None = None
) -> SignedRequest:
    scheme = (options or DEFAULT).scheme
    return SignedRequest(body=body, headers=scheme.sign(body, headers, secret, now))


def _place(document: dict[str, Any], path: str, value: Any) -> None:
    """Set the value a JSON pointer designates, creating objects on the way."""
    *parents, last = pointer_tokens(path) or [""]
    for token in parents:
        document = document.setdefault(token, {})
    document[last] = value


def sample(secret: str, now: float, options: Options | None = None) -> SignedRequest:
    options = options or DEFAULT
    delivery = str(uuid.uuid4())
    when = datetime.fromtimestamp(int(now), UTC).isoformat()
    document: dict[str, Any] = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "order.created",
        "created_at": when,
        "data": {"order_id": "1042", "total": "49.90", "currency": "EUR"},
    }
    if options.dedupe_pointer:
        _place(document, options.dedupe_pointer, delivery)
    if options.type_pointer:
        _place(document, options.type_pointer, "order.created")
    headers = {"Content-Type": "application/json"}
    for name in (options.dedupe_header, options.id_header):
        if name:
            headers[name] = delivery
    return sign(orjson.dumps(document), headers, secret, now, options)
