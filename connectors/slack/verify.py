"""Slack signs `X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:{ts}:{body}")>`.

`X-Slack-Request-Timestamp` is unix seconds, checked ±tolerance both ways (as slack_sdk does).
Form bodies (slash commands, interactivity) are signed as the raw encoded bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from connectors.base import WindowOptions
from connectors.signing import Scheme

SCHEME = Scheme(
    signature_header="x-slack-signature",
    prefix="v0=",
    template="v0:{timestamp}:{body}",
    timestamp_header="x-slack-request-timestamp",
)


def verify(
    body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, options: WindowOptions
) -> None:
    SCHEME.verify(body, headers, secrets, now, options.tolerance_s)
