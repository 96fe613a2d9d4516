"""Building blocks shared by the HMAC-signing vendors. Pure functions, no clock of their own."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime

from connectors.base import DEFAULT_TOLERANCE_S
from schemas.errors import ConfigError, VerificationError

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
    return value[len(prefix) :]


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names lower-cased, as connectors receive them (HTTP/2 lower-cases them anyway)."""
    return {name.lower(): value for name, value in headers.items()}


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


TIMESTAMP_FORMATS = {"unix": parse_unix, "iso8601": parse_iso8601, "http-date": parse_http_date}
PLACEHOLDERS = ("{body}", "{timestamp}", "{id}")


def format_timestamp(now: float, timestamp_format: str) -> str:
    """`now` written the way a vendor sends it (for signing samples and fakes)."""
    if timestamp_format == "iso8601":
        return datetime.fromtimestamp(int(now), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if timestamp_format == "http-date":
        return formatdate(int(now), usegmt=True)
    return str(int(now))


@dataclass(frozen=True)
class Scheme:
    """One header carrying one HMAC over a template of {body}, {timestamp} and {id}.

    Most vendors are an instance of this (Slack, Zendesk, Klaviyo, Chatwoot, GitHub, Meta); the
    generic-hmac connector builds one from a source's options. Keys are the secret's UTF-8 bytes.
    """

    signature_header: str
    template: str = "{body}"
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""
    timestamp_header: str | None = None
    timestamp_format: str = "unix"
    id_header: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.template.count("{body}") != 1:
            problems.append("template must contain {body} exactly once")
        if "{timestamp}" in self.template and not self.timestamp_header:
            problems.append("template signs {timestamp} but no timestamp header is set")
        if "{id}" in self.template and not self.id_header:
            problems.append("template signs {id} but no id header is set")
        if self.timestamp_header and "{timestamp}" not in self.template:
            problems.append("an unsigned timestamp cannot be trusted: put {timestamp} in the template")
        if self.algorithm not in ALGORITHMS:
            problems.append(f"algorithm must be one of {', '.join(ALGORITHMS)}")
        if self.encoding not in ("hex", "base64"):
            problems.append("encoding must be hex or base64")
        if self.timestamp_format not in TIMESTAMP_FORMATS:
            problems.append(f"timestamp format must be one of {', '.join(TIMESTAMP_FORMATS)}")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def timestamped(self) -> bool:
        return self.timestamp_header is not None

    def message(self, body: bytes, timestamp: str = "", msg_id: str = "") -> bytes:
        before, after = self.template.split("{body}")

        def fill(part: str) -> bytes:
            return part.replace("{timestamp}", timestamp).replace("{id}", msg_id).encode()

        return fill(before) + body + fill(after)

    def signature(self, key: bytes, message: bytes) -> str:
        if self.encoding == "hex":
            return hex_digest(key, message, self.algorithm)
        return b64_digest(key, message, self.algorithm)

    def verify(
        self,
        body: bytes,
        headers: Mapping[str, str],
        secrets: Sequence[str],
        now: float,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
    ) -> None:
        """Raise VerificationError unless the request carries this scheme's signature, signed within
        ±tolerance_s of `now` when the scheme signs a timestamp."""
        keys = usable_secrets(secrets)
        received = strip_prefix(header(headers, self.signature_header), self.prefix, self.signature_header)
        if self.encoding == "hex":
            received = received.lower()
        timestamp = header(headers, self.timestamp_header).strip() if self.timestamp_header else ""
        issued = TIMESTAMP_FORMATS[self.timestamp_format](timestamp) if self.timestamp_header else None
        msg_id = header(headers, self.id_header).strip() if self.id_header and "{id}" in self.template else ""
        message = self.message(body, timestamp, msg_id)
        require_match((self.signature(key.encode(), message) for key in keys), [received])
        if issued is not None:
            check_window(issued, now, tolerance_s)

    def sign(self, body: bytes, headers: Mapping[str, str], secret: str, now: float) -> dict[str, str]:
        """The headers with this scheme's signature (and timestamp) set for `now`, names lower-case."""
        replaced = (self.signature_header, self.timestamp_header)
        signed = {name: value for name, value in headers.items() if name.lower() not in replaced}
        timestamp = ""
        if self.timestamp_header:
            timestamp = format_timestamp(now, self.timestamp_format)
            signed[self.timestamp_header] = timestamp
        msg_id = lower_headers(headers).get(self.id_header or "", "")
        signature = self.signature(secret.encode(), self.message(body, timestamp, msg_id))
        signed[self.signature_header] = self.prefix + signature
        return signed
