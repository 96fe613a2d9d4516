"""Building blocks shared by the HMAC-signing vendors. Pure functions, no clock of their own."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from schemas.errors import ConfigError, VerificationError

DEFAULT_TOLERANCE_S = 300
ALGORITHMS = ("sha1", "sha256", "sha512")


def digest(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"unsupported HMAC algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    return hmac.new(key, message, getattr(hashlib, algorithm)).digest()


def hex_digest(key: bytes, message: bytes, algorithm: str = "sha256") -> str:
    return digest(key, message, algorithm).hex()


def b64_digest(key: bytes, message: bytes, algorithm: str = "sha256") -> str:
    return base64.b64encode(digest(key, message, algorithm)).decode("ascii")


def usable_secrets(secrets: Sequence[str]) -> list[str]:
    """Fail closed: an empty (or blank) secret would verify a signature anyone can compute."""
    keys = [s for s in secrets if isinstance(s, str) and s.strip()]
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


def require_match(expected: Iterable[str], received: Iterable[str]) -> None:
    """Raise VerificationError unless some received signature is one of the expected ones."""
    if not any_match(expected, received):
        raise VerificationError("signature does not match")


def header(headers: Mapping[str, str], name: str) -> str:
    """The value of a required signing header, or VerificationError naming it."""
    value = headers.get(name)
    if not value:
        raise VerificationError(f"missing {name} header", code="missing_signature")
    return value


def strip_prefix(value: str, prefix: str, name: str) -> str:
    """The signature after its scheme prefix (`sha256=`, `v0=`); a wrong scheme is a bad signature."""
    value = value.strip()
    if not value.startswith(prefix):
        raise VerificationError(f"{name} does not start with {prefix!r}", code="bad_signature_scheme")
    return value[len(prefix):]


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names lower-cased, as connectors receive them (HTTP/2 lower-cases them anyway)."""
    return {name.lower(): value for name, value in headers.items()}


def tolerance_s(options: Mapping[str, Any]) -> float:
    """The timestamp window of a source: `options["tolerance_s"]`, 300 s by default."""
    value = options.get("tolerance_s", DEFAULT_TOLERANCE_S)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(f"tolerance_s must be a positive number of seconds, got {value!r}")
    return float(value)


def check_window(timestamp_s: float, now: float, tolerance_s: float) -> None:
    """Reject timestamps outside ±tolerance of now, both ways (replays and clock games)."""
    if timestamp_s < now - tolerance_s:
        raise VerificationError("timestamp is older than the tolerance", code="stale_timestamp")
    if timestamp_s > now + tolerance_s:
        raise VerificationError("timestamp is in the future beyond the tolerance", code="future_timestamp")


def _bad_timestamp(value: str, kind: str) -> VerificationError:
    return VerificationError(f"timestamp {value[:40]!r} is not {kind}", code="bad_timestamp")


def parse_unix(value: str) -> int:
    """Unix seconds written as ASCII digits (no sign, no underscores, no other digit scripts)."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise _bad_timestamp(value, "unix seconds")
    return int(text)


def parse_iso8601(value: str) -> float:
    """An ISO-8601 instant with its offset (Zendesk); a naive time is refused, its zone is unknown."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _bad_timestamp(value, "ISO-8601") from None
    if parsed.tzinfo is None:
        raise _bad_timestamp(value, "an ISO-8601 time with an offset")
    return parsed.timestamp()


def parse_http_date(value: str) -> float:
    """An RFC 9110 HTTP-date (`Tue, 14 Apr 2026 03:50:12 GMT`, Klaviyo)."""
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        raise _bad_timestamp(value, "an HTTP-date") from None
    if parsed.tzinfo is None:
        raise _bad_timestamp(value, "an HTTP-date in GMT")
    return parsed.timestamp()


def verify_prefixed_hex(body: bytes, headers: Mapping[str, str], secrets: Sequence[str], name: str,
                        prefix: str = "sha256=") -> None:
    """`<name>: sha256=<hex HMAC-SHA256(secret, raw body)>`, the scheme GitHub and Meta share."""
    keys = usable_secrets(secrets)
    received = strip_prefix(header(headers, name), prefix, name).lower()
    require_match((hex_digest(key.encode(), body) for key in keys), [received])
