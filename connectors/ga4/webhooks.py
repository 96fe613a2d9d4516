"""The webhook half of the connector contract for a vendor that sends none: every request is
refused (401), nothing parses, and there is no sample to send."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors.base import Options, Parsed, SignedRequest
from schemas.envelope import Envelope
from schemas.errors import ConfigError, MalformedError, VerificationError
from schemas.records import Record


def verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, options: Any) -> None:
    raise VerificationError("Google Analytics sends no webhooks", code="no_webhooks")


def parse(body: bytes, headers: Mapping[str, str], options: Options) -> Parsed:
    raise MalformedError("Google Analytics sends no webhooks", code="no_webhooks")


def normalize(envelope: Envelope) -> list[Record]:
    return []


def sample(secret: str, now: float, options: Options | None = None) -> SignedRequest:
    raise ConfigError("ga4 is pull only: it has no webhook to sample (try `hookyard sync run`)")
