"""How Slack's Web API answers, for connectors.http.

Errors come as HTTP 200 `{"ok": false, "error": "<code>"}`; over the limit it is a 429 with
`Retry-After` and `error: ratelimited`. Slack takes no idempotency key (dedupe on the returned `ts`).
An incoming webhook answers the text `ok`: call it with `expect_json=False`.
"""

from __future__ import annotations

from typing import Any

import httpx

from connectors.http import Hooks, Kind, Outcome, judge_status
from schemas.retry import delay_from_headers

REAUTHORIZE = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "missing_scope"}
)
RETRY = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})


class SlackHooks(Hooks):
    def judge(self, response: httpx.Response, body: Any, now: float) -> Outcome:
        outcome = judge_status(response, now)
        if not (isinstance(body, dict) and body.get("ok") is False):
            return outcome
        error = str(body.get("error"))
        if error == "ratelimited":
            return Outcome(Kind.THROTTLED, delay_from_headers(response.headers, now), error)
        if outcome.kind is not Kind.OK:
            return Outcome(outcome.kind, outcome.delay_s, error)
        if error in REAUTHORIZE:
            return Outcome(Kind.REAUTHORIZE, detail=error)
        return Outcome(Kind.RETRY if error in RETRY else Kind.PERMANENT, detail=error)
