"""How Shopify's Admin API answers, for connectors.http.

GraphQL charges cost points from a leaky bucket per app and shop. Every answer reports
`extensions.cost`: the points really charged (`actualQueryCost`) and what the bucket holds now
(`throttleStatus.currentlyAvailable`); both go back to the rate budget's `points` limit. A throttled
query is HTTP 200 (sometimes 429) with `errors[].extensions.code == "THROTTLED"` and
`actualQueryCost: null` (nothing charged): wait `(requested − available) / restoreRate`.
Other errors in a 200 without data: `ACCESS_DENIED` wants new scopes (re-authorize),
`INTERNAL_SERVER_ERROR` is retried, anything else (a bad query) is permanent.
"""

from __future__ import annotations

from typing import Any

import httpx

from connectors.http import Hooks, Kind, Outcome, judge_status

POINTS = "points"  # the budget limit of connectors.budget.VENDOR_LIMITS["shopify"]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class ShopifyHooks(Hooks):
    def judge(self, response: httpx.Response, body: Any, now: float) -> Outcome:
        outcome = judge_status(response, now)
        if not isinstance(body, dict) or outcome.kind not in (Kind.OK, Kind.THROTTLED):
            return outcome
        cost = (body.get("extensions") or {}).get("cost") or {}
        status = cost.get("throttleStatus") or {}
        available = _number(status.get("currentlyAvailable"))
        remaining = {POINTS: available} if available is not None else {}
        errors = body.get("errors")
        codes = {
            str((e.get("extensions") or {}).get("code"))
            for e in (errors if isinstance(errors, list) else [])
            if isinstance(e, dict)
        }
        if "THROTTLED" in codes or outcome.kind is Kind.THROTTLED:
            requested, restore = _number(cost.get("requestedQueryCost")), _number(status.get("restoreRate"))
            delay = outcome.delay_s
            if delay is None and None not in (requested, available, restore) and restore:
                delay = max((requested or 0.0) - (available or 0.0), 0.0) / restore
            return Outcome(Kind.THROTTLED, delay, "THROTTLED", used_cost=0.0, remaining=remaining)
        used = _number(cost.get("actualQueryCost"))
        if errors and not body.get("data"):
            detail = f"GraphQL errors {sorted(codes)}: {str(errors)[:200]}"
            if "ACCESS_DENIED" in codes:
                return Outcome(Kind.REAUTHORIZE, detail=detail)
            kind = Kind.RETRY if "INTERNAL_SERVER_ERROR" in codes else Kind.PERMANENT
            return Outcome(kind, detail=detail, used_cost=used, remaining=remaining)
        return Outcome(Kind.OK, used_cost=used, remaining=remaining)
