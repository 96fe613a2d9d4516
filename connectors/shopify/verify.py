"""Shopify signs base64(HMAC-SHA256(secret, raw body)) in X-Shopify-Hmac-Sha256.

"Events" webhooks send the same value in an unprefixed `shopify-hmac-sha256` as well.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from connectors.base import Options
from connectors.signing import any_match, b64_digest, usable_secrets
from schemas.errors import VerificationError


def signature_header(headers: Mapping[str, str]) -> str:
    value = headers.get("x-shopify-hmac-sha256") or headers.get("shopify-hmac-sha256")
    if not value:
        raise VerificationError("missing X-Shopify-Hmac-Sha256 header", code="missing_signature")
    return value


def verify(
    body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, options: Options
) -> None:
    received = signature_header(headers)
    expected = [b64_digest(secret.encode(), body) for secret in usable_secrets(secrets)]
    if not any_match(expected, [received.strip()]):
        raise VerificationError("signature does not match")
