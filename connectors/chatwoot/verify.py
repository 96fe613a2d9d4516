"""Chatwoot (≥ 4.11.2) signs `X-Chatwoot-Signature: sha256=<hex HMAC-SHA256(secret, "{ts}.{body}")>`.

`X-Chatwoot-Timestamp` is unix seconds, checked ±tolerance both ways. Older Chatwoot sends no
signature: with a secret configured such requests are refused (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from connectors.base import WindowOptions
from connectors.signing import Scheme

SCHEME = Scheme(
    signature_header="x-chatwoot-signature",
    prefix="sha256=",
    template="{timestamp}.{body}",
    timestamp_header="x-chatwoot-timestamp",
)


def verify(
    body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, options: WindowOptions
) -> None:
    SCHEME.verify(body, headers, secrets, now, options.tolerance_s)
