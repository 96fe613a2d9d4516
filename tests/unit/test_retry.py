"""Backoff, Retry-After and classification: pure tables, no broker, no clock."""

from __future__ import annotations

import random

import httpx
import pydantic
import pytest
import sqlalchemy.exc

from schemas.errors import MalformedError, PermanentError, ReauthorizationRequired, TransientError
from schemas.retry import RetryPolicy, Verdict, classify, delay_from_headers, parse_retry_after

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (1, 1.0, 2.0),
        (2, 1.0, 4.0),
        (3, 1.0, 8.0),
        (5, 1.0, 32.0),
        (10, 1.0, 600.0),  # capped
        (40, 1.0, 600.0),  # no overflow far past the cap
        (3, 0.0, 0.0),  # full jitter reaches down to zero
        (3, 0.5, 4.0),
    ],
)
def test_backoff_table(attempt: int, rand: float, expected: float) -> None:
    """Full jitter: U(0, min(cap, base·2^(n-1))), the random draw injected."""
    policy = RetryPolicy(max_attempts=8, base_s=2.0, cap_s=600.0)
    assert policy.backoff_s(attempt, lambda: rand) == pytest.approx(expected)


def test_backoff_jitter_spreads_within_bounds() -> None:
    """Across many draws the delays stay inside [0, ceiling] and actually spread."""
    rng = random.Random(7)
    policy = RetryPolicy(base_s=1.0, cap_s=30.0)
    delays = [policy.backoff_s(4, rng.random) for _ in range(2000)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert max(delays) - min(delays) > 6.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("Fri, 15 Jan 2027 08:02:00 GMT", 120.0),
        ("Thu, 14 Jan 2027 08:00:00 GMT", 0.0),  # a date in the past means now
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
        ("inf", None),
        ("Fri, 15 Jan 2027 25:99:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Seconds or an HTTP-date (NOW is Fri, 15 Jan 2027 08:00:00 GMT); garbage is ignored."""
    # 1_800_000_000 is 2027-01-15T08:00:00Z
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 42)}, 42.0),  # GitHub: epoch
        ({"RateLimit-Remaining": "0", "RateLimit-Reset": "9"}, 9.0),  # IETF draft: seconds left
        ({"x-ratelimit-remaining": "5", "x-ratelimit-reset": str(int(NOW) + 42)}, None),
        ({}, None),
    ],
)
def test_delay_from_headers(headers: dict[str, str], expected: float | None) -> None:
    """Retry-After first, then an exhausted rate-limit window's reset."""
    assert delay_from_headers(headers, NOW) == expected


def _status(code: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://vendor.test")
    return httpx.HTTPStatusError("x", request=request, response=httpx.Response(code, request=request))


def _validation_error() -> pydantic.ValidationError:
    class M(pydantic.BaseModel):
        x: int

    try:
        M(x="nope")  # type: ignore[arg-type]
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (TransientError("x"), Verdict.RETRY),
        (httpx.ConnectTimeout("x"), Verdict.RETRY),
        (httpx.ConnectError("x"), Verdict.RETRY),
        (_status(500), Verdict.RETRY),
        (_status(503), Verdict.RETRY),
        (_status(429), Verdict.RETRY),
        (_status(408), Verdict.RETRY),
        (_status(409), Verdict.RETRY),
        (_status(400), Verdict.DEAD),
        (_status(404), Verdict.DEAD),
        (_status(422), Verdict.DEAD),
        (_status(401), Verdict.REAUTHORIZE),
        (_status(403), Verdict.REAUTHORIZE),
        (ReauthorizationRequired("x"), Verdict.REAUTHORIZE),
        (PermanentError("x"), Verdict.DEAD),
        (MalformedError("x"), Verdict.DEAD),
        (_validation_error(), Verdict.DEAD),
        (KeyError("id"), Verdict.DEAD),
        (sqlalchemy.exc.OperationalError("s", {}, Exception("down")), Verdict.RETRY),
        (ConnectionResetError(), Verdict.RETRY),
        (TimeoutError(), Verdict.RETRY),
        (RuntimeError("unknown"), Verdict.RETRY),
    ],
)
def test_classification_table(error: BaseException, verdict: Verdict) -> None:
    """Transient → retry, permanent → dead letter, vendor 401/403 → dead letter + re-authorize."""
    assert classify(error) is verdict
