"""Stripe signs hex HMAC-SHA256 of "{t}.{body}" in `Stripe-Signature: t=…,v1=…[,v1=…][,v0=…]`.

The key is the whole `whsec_…` string. Any `v1` may match (several during a secret roll); `v0` (test
mode) and unknown schemes are ignored, so a request cannot be downgraded. stripe-python only refuses old
timestamps; we refuse both ways.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from connectors.base import WindowOptions
from connectors.signing import (
    check_window,
    header,
    hex_digest,
    parse_unix,
    require_match,
    usable_secrets,
)
from schemas.errors import VerificationError

HEADER = "stripe-signature"


def parse_header(value: str) -> tuple[str, list[str]]:
    """The first `t` and every `v1` signature of a Stripe-Signature header."""
    timestamp: str | None = None
    signatures: list[str] = []
    for item in value.split(","):
        scheme, _, signature = item.strip().partition("=")
        if scheme == "t" and timestamp is None:
            timestamp = signature
        elif scheme == "v1":
            signatures.append(signature.lower())
    if timestamp is None or not signatures:
        raise VerificationError("Stripe-Signature has no t= or no v1= signature", code="missing_signature")
    return timestamp, signatures


def signed_payload(timestamp: str, body: bytes) -> bytes:
    return timestamp.encode("ascii") + b"." + body


def verify(
    body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, options: WindowOptions
) -> None:
    keys = usable_secrets(secrets)
    timestamp, received = parse_header(header(headers, HEADER))
    issued = parse_unix(timestamp)
    message = signed_payload(timestamp.strip(), body)
    require_match((hex_digest(key.encode(), message) for key in keys), received)
    check_window(issued, now, options.tolerance_s)
