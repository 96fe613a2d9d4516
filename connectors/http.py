"""One client layer for every vendor API, on httpx.

    client = VendorClient("stripe", "payments", "https://api.stripe.com",
                          headers={"Authorization": f"Bearer {key}"}, hooks=StripeHooks(),
                          budget=Budget(redis, "stripe", "payments", limits_for("stripe")),
                          breaker=Breaker(redis, "stripe", "payments"))
    answer = client.call("GET", "/v1/customers/{id}", path_params={"id": "cus_1"})

A call goes: circuit breaker (fail fast while open) → shared rate budget (priority: real-time or
backfill) → the HTTP exchange → the answer judged by the vendor's `Hooks`:

| answer                                   | outcome                                                   |
|------------------------------------------|-----------------------------------------------------------|
| 2xx                                      | returned (`Answer`, JSON decoded)                         |
| 2xx whose body is not JSON               | retried; then `MalformedAnswer` (transient, see below)    |
| 429 (or a vendor's throttle in the body) | retried after the vendor's wait; then `Throttled`         |
| 5xx, 408, 409, 425, transport error      | retried with backoff; then `TransientError`               |
| 401, 403                                 | `ReauthorizationRequired` (the source gets flagged)       |
| other 4xx                                | `PermanentError`                                          |

Retries stay in process only while they are cheap: at most `retry.max_attempts` tries and
`max_wait_s` of sleeping in all (backoff, `Retry-After` or the vendor's rate headers through
`delay_from_headers`, and budget waits). Past either bound the error propagates with `retry_after_s`
set, and the task waits in the database, not in a worker. A garbled 2xx is transient: the request was
accepted and the answer is what broke (a truncated body, a proxy's error page), which clears up; the
task's attempts are bounded, so one that never does still reaches the dead letters. It also counts
against the breaker, like a 5xx, 408 or transport error: a vendor answering garbage is down in all but
name. A 429, 409 or 425 is a vendor that is up and busy: retried, never held against the breaker.

Vendor-specific answers (Stripe's `Stripe-Should-Retry`, Shopify's THROTTLED inside a 200, Slack's
200 `{"ok": false}`) live in a small `Hooks` subclass in the vendor's package (`client.py`), so this
loop stays generic. A hook also names the vendor's idempotency header: the key is made once, before
the loop, and sent on every try. Each try logs one `vendor.call` line and feeds
`hookyard_vendor_calls_total` / `hookyard_vendor_call_seconds` / `hookyard_vendor_throttled_total`,
labelled by vendor, account and the path *template*, never a URL or an id; `usage.CALLS` counts it
for the account's daily quota.

One `httpx.Client` per process (`process_client()`, explicit timeouts); tests pass `http=` with an
`httpx.MockTransport`. The clock, sleep and random source are injected.

Credentials: fixed `headers=`, or `auth=TokenAuth(provider)` (`connectors.tokens`), which asks the
provider for a token before the call and, when the vendor refuses it (a 401, or a vendor's "token
expired" in a 2xx; not a 403, which refreshing cannot cure), for a refreshed one, then sends the
call once more. That extra try is not one of `retry.max_attempts`; a second refusal raises
`ReauthorizationRequired`.
"""

from __future__ import annotations

import functools
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import structlog

from connectors import metrics, usage
from connectors.breaker import Breaker, Ticket
from connectors.budget import Budget, Priority
from connectors.tokens import TokenAuth
from schemas.errors import (
    CircuitOpen,
    MalformedAnswer,
    PermanentError,
    ReauthorizationRequired,
    Throttled,
    TransientError,
)
from schemas.retry import RetryPolicy, Verdict, classify_status, delay_from_headers

log = structlog.get_logger()

CALL_RETRY = RetryPolicy(max_attempts=4, base_s=0.5, cap_s=8.0)  # in-process tries of one call
MAX_WAIT_S = 30.0  # in-process sleeping per call, all waits together
DETAIL_CHARS = 300


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 5.0
    read_s: float = 30.0
    write_s: float = 30.0
    pool_s: float = 5.0

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect_s, read=self.read_s, write=self.write_s, pool=self.pool_s)


def make_http_client(
    timeouts: Timeouts | None = None, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """An httpx client with explicit timeouts; never follows redirects (a vendor's 3xx is an error)."""
    return httpx.Client(
        timeout=(timeouts or Timeouts()).httpx(),
        transport=transport,
        follow_redirects=False,
        headers={"User-Agent": "hookyard"},
    )


@functools.cache
def _client_of(pid: int) -> httpx.Client:
    return make_http_client()


def process_client() -> httpx.Client:
    """This process's one client. Keyed by pid: a forked worker must not share its parent's pool."""
    return _client_of(os.getpid())


class Kind(StrEnum):
    OK = "ok"
    THROTTLED = "throttled"  # retry after the vendor's wait; the vendor is up
    BUSY = "busy"  # 409, 425, an object lock: retry with backoff; the vendor is up
    RETRY = "retry"  # 5xx, 408, transport errors: retry, and a failure for the breaker
    INVALID = "invalid"  # a 2xx that does not parse: retry, and a failure for the breaker
    REAUTHORIZE = "reauthorize"
    PERMANENT = "permanent"


BREAKER_FAILURES = (Kind.RETRY, Kind.INVALID)


@dataclass(frozen=True)
class Outcome:
    """How an answer is judged. `used_cost` (cost units the vendor really charged) and `remaining`
    (limit name → units the vendor says are left) correct the rate budget."""

    kind: Kind
    delay_s: float | None = None
    detail: str = ""
    used_cost: float | None = None
    remaining: Mapping[str, float] = field(default_factory=dict)


def judge_status(response: httpx.Response, now: float) -> Outcome:
    """The generic rules: by status code, waits from `Retry-After` and rate-limit headers."""
    if response.is_success:
        return Outcome(Kind.OK)
    delay = delay_from_headers(response.headers, now)
    detail = response.text[:DETAIL_CHARS]
    if response.status_code == 429:
        return Outcome(Kind.THROTTLED, delay, detail)
    if response.status_code in (409, 425):
        return Outcome(Kind.BUSY, delay, detail)
    verdict = classify_status(response.status_code)
    if verdict is Verdict.RETRY:
        return Outcome(Kind.RETRY, delay, detail)
    if verdict is Verdict.REAUTHORIZE:
        return Outcome(Kind.REAUTHORIZE, detail=detail)
    return Outcome(Kind.PERMANENT, detail=detail)


class Hooks:
    """How a vendor answers. These are the generic rules; a vendor overrides what it does otherwise."""

    def idempotency_header(self, method: str) -> str | None:
        """The header carrying an outbound idempotency key for `method`, if the vendor takes one."""
        return None

    def judge(self, response: httpx.Response, body: Any, now: float) -> Outcome:
        """Judge a decoded answer (`body` is the JSON, or None when there is none)."""
        return judge_status(response, now)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: Any  # decoded JSON; the text when the call did not expect JSON; None when empty
    attempts: int


FINAL_ERRORS: dict[Kind, type[TransientError]] = {
    Kind.THROTTLED: Throttled,
    Kind.INVALID: MalformedAnswer,
    Kind.RETRY: TransientError,
    Kind.BUSY: TransientError,
}


class VendorClient:
    """Calls to one vendor account: its base URL and headers, its budget, its breaker, its hooks."""

    def __init__(
        self,
        vendor: str,
        account: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        hooks: Hooks | None = None,
        auth: TokenAuth | None = None,
        budget: Budget | None = None,
        breaker: Breaker | None = None,
        http: httpx.Client | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy = CALL_RETRY,
        max_wait_s: float = MAX_WAIT_S,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        new_key: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.vendor, self.account = vendor, account
        self.base = httpx.URL(base_url)
        self.headers = dict(headers or {})
        self.hooks = hooks or Hooks()
        self.auth = auth
        self.budget, self.breaker = budget, breaker
        self.http = http or process_client()
        self.timeout = timeouts.httpx() if timeouts else httpx.USE_CLIENT_DEFAULT  # never None: no limit
        self.retry, self.max_wait_s = retry, max_wait_s
        self._clock, self._sleep, self._rand, self._new_key = clock, sleep, rand, new_key

    def url(self, path: str, path_params: Mapping[str, object] | None = None) -> httpx.URL:
        """The base URL joined with a path template filled with (escaped) parameters."""
        filled = path.format_map({k: quote(str(v), safe="") for k, v in (path_params or {}).items()})
        return httpx.URL(str(self.base).rstrip("/") + "/" + filled.lstrip("/"))

    def _next_url(self, url: str) -> httpx.URL:
        """A full URL the vendor handed back (a next link): only to the vendor's own origin, since
        our credentials go with it."""
        target = httpx.URL(url)
        if (target.scheme, target.host, target.port) != (self.base.scheme, self.base.host, self.base.port):
            raise PermanentError(f"{self.vendor}/{self.account}: refusing a link to {target.host}")
        return target

    def call(
        self,
        method: str,
        path: str,
        *,
        path_params: Mapping[str, object] | None = None,
        url: str | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        priority: Priority = Priority.REALTIME,
        cost: float = 1.0,
        limits: Sequence[str] = (),
        expect_json: bool = True,
    ) -> Answer:
        """One API call with its retries. `path` is the template (the label in logs and metrics);
        `url` (a next link) replaces the address; `cost` and `limits` are what the budget debits;
        `content` sends these exact bytes (a body that was signed)."""
        target = self._next_url(url) if url is not None else self.url(path, path_params)
        sent = {**self.headers, **(headers or {})}
        header = self.hooks.idempotency_header(method.upper())
        if header:
            sent[header] = idempotency_key or self._new_key()  # once, before the loop
        token = None
        if self.auth is not None:
            token = self.auth.provider.token()
            sent[self.auth.header] = self.auth.value(token)
        request = self.http.build_request(
            method,
            target,
            params=params,
            json=json,
            data=data,
            content=content,
            headers=sent,
            timeout=self.timeout,
        )
        slept = 0.0
        attempt, tries = 0, self.retry.max_attempts
        while attempt < tries:
            attempt += 1
            ticket = self._enter()
            if self.budget is not None:
                try:
                    slept += self.budget.wait(
                        cost, priority, limits, max_wait_s=self.max_wait_s - slept, sleep=self._sleep
                    )
                except Throttled:
                    if ticket is not None and self.breaker is not None:
                        self.breaker.release(ticket)
                    self._count("budget")
                    raise
            outcome, answer = self._exchange(request, path, attempt, expect_json)
            if ticket is not None and self.breaker is not None:
                self.breaker.record(ticket, ok=outcome.kind not in BREAKER_FAILURES)
            if self.budget is not None and (outcome.used_cost is not None or outcome.remaining):
                refund = 0.0 if outcome.used_cost is None else cost - outcome.used_cost
                self.budget.settle(refund=refund, remaining=outcome.remaining, extra=limits)
            message = f"{self.vendor}/{self.account} {method} {path}: {outcome.kind} {outcome.detail}"
            if outcome.kind is Kind.OK and answer is not None:
                return answer
            if outcome.kind is Kind.REAUTHORIZE:
                if token is None or self.auth is None or answer is None or answer.status == 403:
                    raise ReauthorizationRequired(message)
                token = self.auth.provider.refresh(token)
                request.headers[self.auth.header] = self.auth.value(token)
                token, tries = None, tries + 1  # one refresh, one more try, then a refusal is final
                continue
            if outcome.kind is Kind.PERMANENT:
                raise PermanentError(message)
            delay = outcome.delay_s
            if delay is None:
                delay = self.retry.backoff_s(attempt, self._rand)
            if attempt == tries or slept + delay > self.max_wait_s:
                raise FINAL_ERRORS[outcome.kind](message, retry_after_s=delay)
            self._sleep(delay)
            slept += delay
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _enter(self) -> Ticket | None:
        if self.breaker is None:
            return None
        try:
            return self.breaker.enter()
        except CircuitOpen:
            self._count("circuit_open")
            raise

    def _count(self, status_class: str) -> None:
        metrics.CALLS.labels(self.vendor, self.account, status_class).inc()

    def _exchange(
        self, request: httpx.Request, path: str, attempt: int, expect_json: bool
    ) -> tuple[Outcome, Answer | None]:
        """One HTTP exchange, judged, logged and counted."""
        started = time.perf_counter()
        status: int | None = None
        answer: Answer | None = None
        try:
            response = self.http.send(request)
        except httpx.TransportError as exc:
            outcome = Outcome(Kind.RETRY, detail=f"{type(exc).__name__}: {exc}"[:DETAIL_CHARS])
        else:
            status = response.status_code
            outcome, body = self._judge(response, expect_json)
            answer = Answer(status, response.headers, body, attempt)
        duration = time.perf_counter() - started
        status_class = _status_class(outcome.kind, status)
        usage.CALLS.add(self.account)  # the daily quota counts every request sent
        metrics.CALL_SECONDS.labels(self.vendor, self.account).observe(duration)
        self._count(status_class)
        if outcome.kind is Kind.THROTTLED:
            metrics.THROTTLED.labels(self.vendor, self.account).inc()
        log.info(
            "vendor.call",
            vendor=self.vendor,
            account=self.account,
            method=request.method,
            path=path,
            status=status,
            status_class=status_class,
            outcome=outcome.kind.value,
            duration_ms=round(duration * 1000, 1),
            attempt=attempt,
            **({"detail": outcome.detail, "delay_s": outcome.delay_s} if outcome.kind is not Kind.OK else {}),
        )
        return outcome, answer

    def _judge(self, response: httpx.Response, expect_json: bool) -> tuple[Outcome, Any]:
        if response.is_success and not expect_json:
            return self.hooks.judge(response, None, self._clock()), response.text
        try:
            body = orjson.loads(response.content) if response.content else None
        except ValueError:
            if response.is_success:
                kind = response.headers.get("content-type", "no content type")
                return Outcome(
                    Kind.INVALID,
                    detail=f"a {response.status_code} with a body that is not JSON "
                    f"({kind}): {response.text[:80]!r}",
                ), None
            body = None
        return self.hooks.judge(response, body, self._clock()), body


def _status_class(kind: Kind, status: int | None) -> str:
    """A bounded label: 2xx…5xx, or what went wrong when the status alone would mislead."""
    if status is None:
        return "transport"
    if kind in (Kind.THROTTLED, Kind.INVALID):
        return kind.value
    if kind is not Kind.OK and status < 400:
        return "vendor_error"  # a 2xx whose body says it failed (Slack, GraphQL)
    return f"{status // 100}xx"
