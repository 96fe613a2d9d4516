"""The `hookyard` connector: Hookyard's own events (alerts), written straight into the inbox by the
monitor job. They never come over HTTP, so there is no signature to check: verify and parse refuse
everything, and no source in the sources file may use this connector or this source name.

Processing treats them like any vendor's events (normalize yields no records), so workflow rules can
route them: `vendors = ["hookyard"]`, `types = ["alert.*"]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from connectors.base import ConnectorSpec, Headers, Parsed, SignedRequest
from schemas.envelope import Envelope
from schemas.errors import VerificationError
from schemas.records import Record

INTERNAL_SOURCE = "hookyard"  # the source and vendor of Hookyard's own events


def _refuse(*_: Any) -> NoReturn:
    raise VerificationError("Hookyard's own events are never received over HTTP", code="internal_only")


def _verify(body: bytes, headers: Headers, secrets: Sequence[str], now: float, options: Any) -> None:
    _refuse()


def _parse(body: bytes, headers: Headers, options: Any) -> Parsed:
    _refuse()


def _normalize(envelope: Envelope) -> list[Record]:
    return []  # an alert is an event to route, not a vendor object to store


def _sample(secret: str, now: float, options: Any = None) -> SignedRequest:
    _refuse()


SPEC = ConnectorSpec(name=INTERNAL_SOURCE, verify=_verify, parse=_parse, normalize=_normalize, sample=_sample)
