"""Standard Webhooks (and Svix): `webhook-signature: v1,<base64 HMAC-SHA256>` over "{id}.{ts}.{body}".

The key is the base64-decoded part after `whsec_`. The header is a space-separated list (rotation):
any `v1` may match; other versions (`v1a`, asymmetric) are ignored. Svix sends the same headers as
`svix-id`, `svix-timestamp` and `svix-signature`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence

from connectors.base import WindowOptions
from connectors.signing import (
    b64_digest,
    check_window,
    header,
    parse_unix,
    require_match,
    usable_secrets,
)
from schemas.errors import ConfigError

PREFIX = "whsec_"


def key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (padding optional, as the reference library allows)."""
    encoded = secret.removeprefix(PREFIX)
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("a Standard Webhooks secret is whsec_ followed by base64") from None


def headers_of(headers: Mapping[str, str]) -> tuple[str, str, str]:
    """(id, timestamp, signature) from the webhook-* headers, or their svix-* twins."""
    family = "webhook" if "webhook-signature" in headers or "svix-signature" not in headers else "svix"
    return (
        header(headers, f"{family}-id"),
        header(headers, f"{family}-timestamp"),
        header(headers, f"{family}-signature"),
    )


def signed_content(msg_id: str, timestamp: str, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def signatures(value: str) -> list[str]:
    return [sig for version, _, sig in (item.partition(",") for item in value.split()) if version == "v1"]


def verify(
    body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, options: WindowOptions
) -> None:
    keys = [key(secret) for secret in usable_secrets(secrets)]
    msg_id, timestamp, signature = headers_of(headers)
    issued = parse_unix(timestamp)
    message = signed_content(msg_id, timestamp.strip(), body)
    require_match((b64_digest(k, message) for k in keys), signatures(signature))
    check_window(issued, now, options.tolerance_s)
