"""Acme signs `X-Acme-Signature: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`.

`X-Acme-Timestamp` is unix seconds, accepted within ±options.tolerance_s (300 by default) both ways.
Pure: no clock, no I/O; `now` is passed in so the window can be tested at its edges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from connectors.base import WindowOptions
from connectors.signing import (
    any_match,
    check_window,
    header,
    hex_digest,
    parse_unix,
    strip_prefix,
    usable_secrets,
)
from schemas.errors import VerificationError

SIGNATURE = "x-acme-signature"
TIMESTAMP = "x-acme-timestamp"
PREFIX = "sha256="


def message(body: bytes, timestamp: str) -> bytes:
    """What Acme signs: the timestamp header's value, a dot, the raw body bytes."""
    return timestamp.encode() + b"." + body


def verify(
    body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, options: WindowOptions
) -> None:
    keys = usable_secrets(secrets)  # no usable secret: every request is refused (fail closed)
    received = strip_prefix(header(headers, SIGNATURE), PREFIX, SIGNATURE).lower()
    timestamp = header(headers, TIMESTAMP)
    issued = parse_unix(timestamp)
    expected = [hex_digest(key.encode(), message(body, timestamp)) for key in keys]  # rotation
    if not any_match(expected, [received]):  # constant time, and every secret is tried
        raise VerificationError("signature does not match")
    check_window(issued, now, options.tolerance_s)  # only once the timestamp is known to be Acme's
