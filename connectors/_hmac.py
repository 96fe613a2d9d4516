"""Building blocks shared by the HMAC-signing vendors. Pure functions, no clock of their own."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence

from schemas.errors import VerificationError

DEFAULT_TOLERANCE_S = 300


def digest(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, message, getattr(hashlib, algorithm)).digest()


def hex_digest(key: bytes, message: bytes, algorithm: str = "sha256") -> str:
    return digest(key, message, algorithm).hex()


def b64_digest(key: bytes, message: bytes, algorithm: str = "sha256") -> str:
    return base64.b64encode(digest(key, message, algorithm)).decode("ascii")


def usable_secrets(secrets: Sequence[str]) -> list[str]:
    """Fail closed: an empty secret would verify a signature anyone can compute."""
    keys = [s for s in secrets if s]
    if not keys:
        raise VerificationError("no secret is configured for this source", code="no_secret")
    return keys


def any_match(expected: Iterable[str], received: Iterable[str]) -> bool:
    """True when any received signature equals any expected one, in constant time per pair."""
    received = list(received)
    found = False
    for want in expected:
        for got in received:
            # compare_digest on ASCII bytes; never short-circuit so timing reveals nothing
            found |= hmac.compare_digest(want.encode(), got.encode("utf-8", "replace"))
    return found


def header(headers: Mapping[str, str], name: str) -> str:
    """The value of a required signing header, or VerificationError naming it."""
    value = headers.get(name)
    if not value:
        raise VerificationError(f"missing {name} header", code="missing_signature")
    return value


def check_window(timestamp_s: float, now: float, tolerance_s: float) -> None:
    """Reject timestamps outside ±tolerance of now, both ways (replays and clock games)."""
    if timestamp_s < now - tolerance_s:
        raise VerificationError("timestamp is older than the tolerance", code="stale_timestamp")
    if timestamp_s > now + tolerance_s:
        raise VerificationError("timestamp is in the future beyond the tolerance", code="future_timestamp")


def parse_unix(value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise VerificationError(f"timestamp {value[:40]!r} is not unix seconds",
                                code="bad_timestamp") from None
