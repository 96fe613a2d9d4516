"""How Stripe's API answers, for connectors.http.

Stripe takes an `Idempotency-Key` on POST (the same key replays the first answer for at least 24 h),
and says in `Stripe-Should-Retry` whether a failed request may be retried; that header wins over the
status. A 429 carries no `Retry-After`; Stripe's rate limits count per second, so a throttled call
waits out the second (RATE_WINDOW_S) rather than a backoff that may land in the same window. A 429
with `code: lock_timeout` is an object lock, not a rate limit, and a 400 with `code: rate_limit` is one.
"""

from __future__ import annotations

from typing import Any

import httpx

from connectors.http import Hooks, Kind, Outcome, judge_status

RATE_WINDOW_S = 1.0  # Stripe's limits are per second


class StripeHooks(Hooks):
    def idempotency_header(self, method: str) -> str | None:
        return "Idempotency-Key" if method == "POST" else None

    def judge(self, response: httpx.Response, body: Any, now: float) -> Outcome:
        outcome = judge_status(response, now)
        if outcome.kind in (Kind.OK, Kind.REAUTHORIZE):
            return outcome
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        detail = f"{response.status_code} {error.get('type')}/{code}: {error.get('message')}" if error else ""
        detail = detail or outcome.detail
        should_retry = response.headers.get("stripe-should-retry")
        if should_retry == "false":
            return Outcome(Kind.PERMANENT, detail=detail)
        if code == "lock_timeout":
            return Outcome(Kind.BUSY, outcome.delay_s, detail)
        if code == "rate_limit" or response.status_code == 429:
            delay = outcome.delay_s if outcome.delay_s is not None else RATE_WINDOW_S
            return Outcome(Kind.THROTTLED, delay, detail)
        if should_retry == "true" and outcome.kind is Kind.PERMANENT:
            return Outcome(Kind.BUSY, outcome.delay_s, detail)
        return Outcome(outcome.kind, outcome.delay_s, detail)
