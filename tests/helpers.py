"""Test helpers shared by the unit tests: vectors, clocks and signed requests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from connectors import registry
from connectors.base import ConnectorSpec, Options, SignedRequest
from connectors.signing import lower_headers

NOW = 1_700_000_000
VECTORS = Path(__file__).parent / "vectors" / "webhook-signatures.json"


def vectors() -> list[dict[str, Any]]:
    return json.loads(VECTORS.read_text())["cases"]


def to_unix(now: Any) -> float:
    """A vector's clock: unix seconds, an ISO-8601 time or an HTTP-date."""
    if now is None:
        return NOW
    if isinstance(now, int | float):
        return float(now)
    try:
        return datetime.fromisoformat(now.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return parsedate_to_datetime(now).timestamp()


def connector(name: str) -> ConnectorSpec:
    return registry.get(name)


def options_for(name: str, table: dict[str, Any] | None = None) -> Options:
    """A source's `options = {…}` as the connector receives it: validated by its model (ConfigError)."""
    return connector(name).load_options(table or {}, "options")


def verify(
    name: str,
    request: SignedRequest,
    secrets: list[str],
    now: float = NOW,
    options: dict[str, Any] | None = None,
) -> None:
    """Verify a request the way ingress does: header names lower-cased."""
    connector(name).verify(
        request.body, lower_headers(request.headers), secrets, now, options_for(name, options)
    )


def parse(name: str, request: SignedRequest, options: dict[str, Any] | None = None):
    return connector(name).parse(request.body, lower_headers(request.headers), options_for(name, options))


def with_headers(request: SignedRequest, **changes: str | None) -> SignedRequest:
    """The request with headers replaced (`None` removes one); names match case-insensitively."""
    wanted = {name.replace("_", "-").lower(): value for name, value in changes.items()}
    headers = {k: v for k, v in request.headers.items() if k.lower() not in wanted}
    headers.update({k: v for k, v in wanted.items() if v is not None})
    return SignedRequest(body=request.body, headers=headers)


@dataclass
class FakeClock:
    """A clock that moves only when told: `clock()` is now, `advance(s)` lets s seconds pass."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class SleepClock:
    """Unix seconds that move only when told to, or when something sleeps on them (no wall-clock waits)."""

    def __init__(self, now: float = NOW) -> None:
        self.now = float(now)
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def most_in_span(times: list[float], span_s: float) -> int:
    """The largest number of sorted `times` inside any half-open span of `span_s` seconds."""
    best, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - span_s:
            first += 1
        best = max(best, last - first + 1)
    return best
