"""Klaviyo system webhooks sign `Klaviyo-Signature: <hex HMAC-SHA256(secret, BODY + TIMESTAMP)>`.

Body first, no separator; `Klaviyo-Timestamp` is an HTTP-date (`Tue, 14 Apr 2026 03:50:12 GMT`),
checked ±tolerance both ways.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from connectors.base import WindowOptions
from connectors.signing import Scheme

SCHEME = Scheme(
    signature_header="klaviyo-signature",
    template="{body}{timestamp}",
    timestamp_header="klaviyo-timestamp",
    timestamp_format="http-date",
)


def verify(
    body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, options: WindowOptions
) -> None:
    SCHEME.verify(body, headers, secrets, now, options.tolerance_s)
