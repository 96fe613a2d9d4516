"""When to try again, as data and pure functions (no clock, no randomness of their own).

A retry waits in the database (`events.available_at`) and the relay publishes it when due: no Celery
ETA/countdown, so a worker restart, a Redis flush or a deploy neither loses nor duplicates it.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import httpx
import pydantic

from schemas.errors import MalformedError, PermanentError, ReauthorizationRequired


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_s: float = 2.0
    cap_s: float = 600.0

    def backoff_s(self, attempt: int, rand: Callable[[], float]) -> float:
        """Full jitter after the `attempt`-th failure (1-based): U(0, min(cap, base·2^(n-1)))."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** max(attempt - 1, 0))
        return rand() * ceiling


def parse_retry_after(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds or an HTTP-date → seconds from now (≥ 0); None when absent or garbage."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        return max(when.timestamp() - now, 0.0)
    return max(seconds, 0.0) if seconds == seconds and seconds != float("inf") else None


def delay_from_headers(headers: Mapping[str, str], now: float) -> float | None:
    """What the remote asked for: Retry-After, else an exhausted rate-limit window's reset time."""
    lowered = {k.lower(): v for k, v in headers.items()}
    delay = parse_retry_after(lowered.get("retry-after"), now)
    if delay is not None:
        return delay
    remaining = lowered.get("x-ratelimit-remaining") or lowered.get("ratelimit-remaining")
    reset = lowered.get("x-ratelimit-reset") or lowered.get("ratelimit-reset")
    if remaining is not None and remaining.strip() == "0" and reset:
        try:
            value = float(reset)
        except ValueError:
            return None
        # GitHub sends an epoch; the IETF draft sends seconds left. Epochs are far larger.
        return max(value - now, 0.0) if value > 1e9 else max(value, 0.0)
    return None


class Verdict(StrEnum):
    RETRY = "retry"
    DEAD = "dead"
    REAUTHORIZE = "reauthorize"  # dead-letter and flag the source


def classify(exc: BaseException) -> Verdict:
    """Permanent failures (bad data, refused requests) go to the dead letters at once; the rest —
    network, timeouts, 5xx, 429, database or broker hiccups, and anything unknown — are retried,
    since retrying loses nothing and attempts are bounded."""
    if isinstance(exc, ReauthorizationRequired):
        return Verdict.REAUTHORIZE
    if isinstance(
        exc,
        PermanentError
        | MalformedError
        | pydantic.ValidationError
        | ValueError
        | TypeError
        | KeyError
        | UnicodeDecodeError,
    ):
        return Verdict.DEAD
    if isinstance(exc, httpx.HTTPStatusError):
        return classify_status(exc.response.status_code)
    return Verdict.RETRY


def classify_status(status: int) -> Verdict:
    if status in (401, 403):
        return Verdict.REAUTHORIZE
    if status in (408, 409, 425, 429) or status >= 500:
        return Verdict.RETRY
    return Verdict.DEAD
