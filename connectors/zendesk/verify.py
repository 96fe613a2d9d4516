"""Zendesk signs `X-Zendesk-Webhook-Signature: base64(HMAC-SHA256(secret, TIMESTAMP + BODY))`.

`X-Zendesk-Webhook-Signature-Timestamp` is ISO-8601 (`2021-07-25T10:00:00Z`); Zendesk states no
tolerance, we apply ±tolerance_s. The secret string is the key as-is, although it looks like base64.
An older Zendesk page documents BODY + TIMESTAMP; a source whose real deliveries sign that way sets
`options = { signature_order = "body_timestamp" }`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from connectors.signing import Scheme
from connectors.zendesk.options import Options

_BASE = {
    "signature_header": "x-zendesk-webhook-signature",
    "encoding": "base64",
    "timestamp_header": "x-zendesk-webhook-signature-timestamp",
    "timestamp_format": "iso8601",
}
SCHEMES = {
    "timestamp_body": Scheme(template="{timestamp}{body}", **_BASE),
    "body_timestamp": Scheme(template="{body}{timestamp}", **_BASE),
}


def verify(
    body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, options: Options
) -> None:
    SCHEMES[options.signature_order].verify(body, headers, secrets, now, options.tolerance_s)
