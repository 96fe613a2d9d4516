"""Meta (Facebook, Instagram, Messenger, WhatsApp) signs `X-Hub-Signature-256: sha256=<hex>` over
the raw body, which arrives with `\\uXXXX` escapes: never re-serialize before hashing. No timestamp.

The GET handshake answers `hub.challenge` only to `hub.mode=subscribe` with the configured
`hub.verify_token` (option `verify_token`); without a configured token every handshake is refused.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping, Sequence

from connectors.meta.options import Options
from connectors.signing import Scheme
from schemas.errors import VerificationError

SCHEME = Scheme(signature_header="x-hub-signature-256", prefix="sha256=")
CHALLENGE = re.compile(r"[A-Za-z0-9._~-]{1,256}")  # Meta sends an integer; never echo markup back


def verify(
    body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, options: Options
) -> None:
    SCHEME.verify(body, headers, secrets, now)


def handshake(query: Mapping[str, str], options: Options) -> str:
    expected = options.verify_token.get_secret_value() if options.verify_token else ""
    if not expected:
        raise VerificationError("no verify_token is configured for this source", code="no_secret")
    if query.get("hub.mode") != "subscribe":
        raise VerificationError("hub.mode is not subscribe", code="bad_handshake")
    token = query.get("hub.verify_token") or ""
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise VerificationError("hub.verify_token does not match", code="bad_handshake")
    challenge = query.get("hub.challenge") or ""
    if not CHALLENGE.fullmatch(challenge):
        raise VerificationError("hub.challenge is missing or not a plain token", code="bad_handshake")
    return challenge
