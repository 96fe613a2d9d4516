"""The connector contract.

Headers reach a connector as a mapping with lower-case names. Secrets are the source's list of
secrets as configured (rotation: any one may match). `now` is unix seconds, injected so the
timestamp window can be tested at its edges. `options` is the source's connector options
(`tolerance_s`, and whatever a connector documents).

Built-in connectors also say whether their vendor signs a timestamp (a `timestamped` attribute, read
by `connectors.certify`) and implement the optional `Signer` protocol: they sign requests like their
vendor does (samples, redelivery checks, fake vendors). Neither is required of a plug-in connector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from schemas.envelope import Envelope
from schemas.records import Record

Headers = Mapping[str, str]

# Content types a connector accepts; one may set `content_types` to widen the JSON default.
JSON = ("application/json",)
JSON_OR_FORM = ("application/json", "application/x-www-form-urlencoded")


@dataclass(frozen=True)
class Delivery:
    """One event carved out of a verified request (a batch yields several)."""

    dedupe_key: str
    type: str
    payload: Any
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class Parsed:
    """What a verified request holds: events to store, and/or a reply the vendor expects."""

    deliveries: list[Delivery] = field(default_factory=list)
    reply: dict[str, Any] | None = None


@dataclass(frozen=True)
class SignedRequest:
    """A realistic request signed like the vendor would sign it (for `hookyard send --sample`)."""

    body: bytes
    headers: dict[str, str]


@runtime_checkable
class Connector(Protocol):
    """What every vendor connector provides (optionally also `content_types`, default JSON)."""

    name: str

    def verify(
        self, body: bytes, headers: Headers, secrets: Sequence[str], now: float, options: Mapping[str, Any]
    ) -> None:
        """Raise VerificationError unless the raw body and headers carry a valid signature."""

    def parse(self, body: bytes, headers: Headers, options: Mapping[str, Any]) -> Parsed:
        """Turn a verified request into deliveries (raise MalformedError when it cannot)."""

    def normalize(self, envelope: Envelope) -> list[Record]:
        """Map a stored event to canonical records; unknown types yield no records."""

    def sample(self, secret: str, now: float, options: Mapping[str, Any] | None = None) -> SignedRequest:
        """Build a realistic signed request; each call is a new delivery."""


@runtime_checkable
class Signer(Protocol):
    """Connectors that can sign a request as their vendor would, e.g. a redelivery at a later time."""

    def sign(
        self, body: bytes, headers: Headers, secret: str, now: float, options: Mapping[str, Any] | None = None
    ) -> SignedRequest:
        """Return the request with the vendor's signature (and timestamp) headers set for `now`."""


@runtime_checkable
class Handshake(Protocol):
    """Connectors whose vendor verifies the endpoint with a GET (Meta's hub.challenge)."""

    def handshake(self, query: Mapping[str, str], options: Mapping[str, Any]) -> str:
        """Return the body to answer the GET with; raise VerificationError to refuse it."""
