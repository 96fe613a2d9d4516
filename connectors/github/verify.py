"""GitHub signs `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`; no timestamp.

The legacy SHA-1 `X-Hub-Signature` is not accepted. Replays are stopped by X-GitHub-Delivery alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from connectors.base import Options
from connectors.signing import Scheme

SCHEME = Scheme(signature_header="x-hub-signature-256", prefix="sha256=")


def verify(
    body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, options: Options
) -> None:
    SCHEME.verify(body, headers, secrets, now)
