"""The vendor client loop on httpx.MockTransport: retries, waits, error mapping, budget and breaker."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import fakeredis
import httpx
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from connectors.breaker import Breaker
from connectors.budget import Budget, Limit, Priority
from connectors.http import Hooks, Timeouts, VendorClient, make_http_client, process_client
from schemas.errors import (
    CircuitOpen,
    MalformedAnswer,
    PermanentError,
    ReauthorizationRequired,
    Throttled,
    TransientError,
)
from tests.helpers import NOW, SleepClock

Answer = httpx.Response | Exception


class Vendor:
    """A scripted vendor: serves its answers in order and keeps every request it saw."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok(body: Any = None, **headers: str) -> httpx.Response:
    return status(200, {"ok": True} if body is None else body, **headers)


def status(code: int, body: Any = None, **headers: str) -> httpx.Response:
    """A JSON answer; header names written with `_` for `-`."""
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    return httpx.Response(code, json=body if body is not None else {"error": str(code)}, headers=named)


def text(code: int, content: str, content_type: str = "text/html") -> httpx.Response:
    return httpx.Response(code, text=content, headers={"content-type": content_type})


def make(
    vendor: Vendor,
    clock: SleepClock,
    *,
    account: str = "acct",
    hooks: Hooks | None = None,
    budget: Budget | None = None,
    breaker: Breaker | None = None,
    new_key: Callable[[], str] | None = None,
) -> VendorClient:
    return VendorClient(
        "vendor",
        account,
        "https://api.vendor.test/",
        headers={"Authorization": "Bearer secret"},
        http=httpx.Client(transport=httpx.MockTransport(vendor)),
        hooks=hooks,
        budget=budget,
        breaker=breaker,
        clock=clock,
        sleep=clock.sleep,
        rand=lambda: 1.0,  # backoff at its ceiling: 0.5, 1, 2, 4 s
        **({"new_key": new_key} if new_key else {}),
    )


@pytest.fixture
def clock() -> SleepClock:
    """A clock that moves only when the client sleeps on it."""
    return SleepClock()


RETRY_TABLE: list[tuple[str, list[Answer], type[Exception] | None, list[float], float | None]] = [
    ("2xx", [ok()], None, [], None),
    ("503 then ok", [status(503), ok()], None, [0.5], None),
    ("429 Retry-After seconds", [status(429, retry_after="2"), ok()], None, [2.0], None),
    (
        "429 Retry-After HTTP-date",
        [status(429, retry_after=formatdate(NOW + 3, usegmt=True)), ok()],
        None,
        [3.0],
        None,
    ),
    ("429 past the bound", [status(429, retry_after="120")], Throttled, [], 120.0),
    ("5xx until attempts run out", [status(500)] * 4, TransientError, [0.5, 1.0, 2.0], 4.0),
    ("connect error then ok", [httpx.ConnectError("refused"), ok()], None, [0.5], None),
    ("read timeouts", [httpx.ReadTimeout("slow")] * 4, TransientError, [0.5, 1.0, 2.0], 4.0),
    ("401", [status(401)], ReauthorizationRequired, [], None),
    ("403", [status(403)], ReauthorizationRequired, [], None),
    ("404", [status(404)], PermanentError, [], None),
    ("422", [status(422)], PermanentError, [], None),
    ("3xx is not followed", [httpx.Response(302, headers={"location": "/x"})], PermanentError, [], None),
    ("garbled 2xx then ok", [text(200, "<html>maintenance</html>"), ok()], None, [0.5], None),
    ("garbled 2xx every time", [text(200, "<html>")] * 4, MalformedAnswer, [0.5, 1.0, 2.0], 4.0),
    ("408", [status(408), ok()], None, [0.5], None),
    ("409 conflict", [status(409), ok()], None, [0.5], None),
    ("rate headers", [status(503, RateLimit_Remaining="0", RateLimit_Reset="7"), ok()], None, [7.0], None),
    ("total wait bound", [status(503, retry_after="20")] * 2, TransientError, [20.0], 20.0),
]


@pytest.mark.parametrize(
    ("answers", "error", "sleeps", "retry_after_s"),
    [case[1:] for case in RETRY_TABLE],
    ids=[case[0] for case in RETRY_TABLE],
)
def test_retry_table(
    clock: SleepClock,
    answers: list[Answer],
    error: type[Exception] | None,
    sleeps: list[float],
    retry_after_s: float | None,
) -> None:
    """Each answer sequence ends in the right result, after the right sleeps, with the right hint."""
    vendor = Vendor(*answers)
    client = make(vendor, clock)
    if error is None:
        answer = client.call("GET", "/v1/things")
        assert answer.status == 200 and answer.body == {"ok": True}
        assert answer.attempts == len(vendor.requests)
    else:
        with pytest.raises(error) as caught:
            client.call("GET", "/v1/things")
        assert type(caught.value) is error
        assert getattr(caught.value, "retry_after_s", None) == retry_after_s
    assert clock.slept == pytest.approx(sleeps)
    assert len(vendor.requests) == len(sleeps) + 1


def test_idempotency_key_is_made_once_and_sent_on_every_try(clock: SleepClock) -> None:
    """Stripe POST: one key, generated before the loop, the same on each retry."""
    from connectors.stripe.client import StripeHooks

    keys = (f"key-{n}" for n in itertools.count(1))
    vendor = Vendor(status(500), status(500), ok(), ok(), ok())
    client = make(vendor, clock, hooks=StripeHooks(), new_key=lambda: next(keys))
    client.call("POST", "/v1/refunds", data={"charge": "ch_1"})
    assert [r.headers["idempotency-key"] for r in vendor.requests] == ["key-1"] * 3
    client.call("POST", "/v1/refunds", data={"charge": "ch_2"}, idempotency_key="refund:evt_9")
    client.call("GET", "/v1/refunds")
    assert vendor.requests[3].headers["idempotency-key"] == "refund:evt_9"
    assert "idempotency-key" not in vendor.requests[4].headers


def stripe_error(code: int, error_code: str | None = None, **headers: str) -> httpx.Response:
    body = {"error": {"type": "invalid_request_error", "code": error_code, "message": "m"}}
    return status(code, body, **headers)


@pytest.mark.parametrize(
    ("answers", "error", "requests"),
    [
        ([stripe_error(500, Stripe_Should_Retry="false")], PermanentError, 1),
        ([stripe_error(400, Stripe_Should_Retry="true"), ok()], None, 2),
        ([stripe_error(429, "lock_timeout"), ok()], None, 2),
        ([stripe_error(400, "rate_limit"), ok()], None, 2),
        ([stripe_error(429)] * 4, Throttled, 4),
        ([stripe_error(402, "card_declined")], PermanentError, 1),
        ([stripe_error(401)], ReauthorizationRequired, 1),
    ],
    ids=["should-retry false", "should-retry true", "lock timeout", "rate_limit code", "429", "402", "401"],
)
def test_stripe_answers(
    clock: SleepClock, answers: list[Answer], error: type[Exception] | None, requests: int
) -> None:
    """Stripe-Should-Retry wins over the status; lock_timeout and rate_limit are retried."""
    from connectors.stripe.client import StripeHooks

    vendor = Vendor(*answers)
    client = make(vendor, clock, hooks=StripeHooks())
    if error:
        with pytest.raises(error):
            client.call("GET", "/v1/events")
    else:
        client.call("GET", "/v1/events")
    assert len(vendor.requests) == requests


def shopify_body(actual: float | None, available: float, *, throttled: bool = False) -> dict[str, Any]:
    cost = {
        "requestedQueryCost": 752,
        "actualQueryCost": actual,
        "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": available, "restoreRate": 50.0},
    }
    if throttled:
        errors = [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]
        return {"errors": errors, "extensions": {"cost": cost}}
    return {"data": {"orders": {"nodes": []}}, "extensions": {"cost": cost}}


def test_shopify_throttled_inside_a_200_waits_then_refunds(clock: SleepClock) -> None:
    """THROTTLED in a 200 waits (requested − available)/restoreRate; the real cost is refunded."""
    from connectors.shopify.client import ShopifyHooks

    budget = Budget(fakeredis.FakeRedis(), "shopify", "shop", [Limit.bucket("points", 1000, 50)], clock=clock)
    # 666 points left; 1.72 s restore 86 more, so 752 fit; the query really costs 12: 740 left
    vendor = Vendor(ok(shopify_body(None, 666, throttled=True)), ok(shopify_body(12, 740)))
    client = make(vendor, clock, hooks=ShopifyHooks(), budget=budget)
    answer = client.call("POST", "/admin/api/2026-01/graphql.json", json={"query": "{…}"}, cost=752)
    assert answer.body["data"] == {"orders": {"nodes": []}}
    assert clock.slept == pytest.approx([(752 - 666) / 50])
    assert budget.acquire(cost=741) == pytest.approx(1 / 50)  # 752 debited, 740 refunded
    assert budget.acquire(cost=740) == 0.0


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"errors": [{"message": "no", "extensions": {"code": "ACCESS_DENIED"}}]}, ReauthorizationRequired),
        ({"errors": [{"message": "Field 'x' doesn't exist"}]}, PermanentError),
    ],
)
def test_shopify_graphql_errors(clock: SleepClock, body: dict[str, Any], error: type[Exception]) -> None:
    """Errors in a 200 without data: missing scopes re-authorize, a bad query is permanent."""
    from connectors.shopify.client import ShopifyHooks

    with pytest.raises(error):
        make(Vendor(ok(body)), clock, hooks=ShopifyHooks()).call("POST", "/graphql.json", json={})


@pytest.mark.parametrize(
    ("answers", "error", "sleeps"),
    [
        ([ok({"ok": False, "error": "ratelimited"}, retry_after="1"), ok()], None, [1.0]),
        ([status(429, {"ok": False, "error": "ratelimited"}, retry_after="3"), ok()], None, [3.0]),
        ([ok({"ok": False, "error": "internal_error"}), ok()], None, [0.5]),
        ([ok({"ok": False, "error": "invalid_auth"})], ReauthorizationRequired, []),
        ([ok({"ok": False, "error": "channel_not_found"})], PermanentError, []),
    ],
    ids=["ratelimited in a 200", "429 ratelimited", "internal_error", "invalid_auth", "channel_not_found"],
)
def test_slack_answers(
    clock: SleepClock, answers: list[Answer], error: type[Exception] | None, sleeps: list[float]
) -> None:
    """Slack's errors arrive as 200 {"ok": false}; the hook maps them."""
    from connectors.slack.client import SlackHooks

    client = make(Vendor(*answers), clock, hooks=SlackHooks())
    if error:
        with pytest.raises(error):
            client.call("POST", "/api/chat.postMessage", json={"channel": "C1", "text": "hi"})
    else:
        client.call("POST", "/api/chat.postMessage", json={"channel": "C1", "text": "hi"})
    assert clock.slept == pytest.approx(sleeps)


def test_text_answers_when_json_is_not_expected(clock: SleepClock) -> None:
    """An incoming webhook answers the text `ok`: with expect_json=False it is the body."""
    client = make(Vendor(text(200, "ok", "text/plain")), clock)
    assert client.call("POST", "/services/T/B/X", json={"text": "hi"}, expect_json=False).body == "ok"


def test_breaker_opens_on_failures_and_fails_fast(clock: SleepClock) -> None:
    """5xx answers open the breaker mid-call; then calls fail fast without a request, until the probe."""
    redis = fakeredis.FakeRedis()
    breaker = Breaker(redis, "vendor", "acct", failure_threshold=2, open_interval_s=60, clock=clock)
    vendor = Vendor(status(500), status(500), ok())
    client = make(vendor, clock, breaker=breaker)
    with pytest.raises(CircuitOpen) as caught:
        client.call("GET", "/v1/things")
    assert len(vendor.requests) == 2
    assert caught.value.retry_after_s == pytest.approx(60 - 1.0)  # opened, then slept 1 s of backoff
    with pytest.raises(CircuitOpen):
        client.call("GET", "/v1/things")
    assert len(vendor.requests) == 2
    clock.advance(60)
    assert client.call("GET", "/v1/things").status == 200  # the probe, which closes it
    assert breaker.enter().probe is None


def test_throttles_and_4xx_do_not_open_the_breaker(clock: SleepClock) -> None:
    """A 429 or a 404 comes from a vendor that is up."""
    breaker = Breaker(fakeredis.FakeRedis(), "vendor", "acct", failure_threshold=1, clock=clock)
    client = make(Vendor(status(429, retry_after="1"), ok(), status(404)), clock, breaker=breaker)
    client.call("GET", "/v1/things")
    with pytest.raises(PermanentError):
        client.call("GET", "/v1/things")
    assert breaker.enter().state == "closed"


def test_budget_waits_then_gives_up_without_a_request(clock: SleepClock) -> None:
    """The client sleeps for the budget; past max_wait_s it raises Throttled and sends nothing."""
    budget = Budget(
        fakeredis.FakeRedis(), "vendor", "acct", [Limit.window("w", 1, 10.0, jitter_s=0)], clock=clock
    )
    vendor = Vendor(ok(), ok())
    client = make(vendor, clock, budget=budget)
    client.call("GET", "/v1/things", priority=Priority.BACKFILL)
    client.call("GET", "/v1/things", priority=Priority.BACKFILL)
    assert clock.slept == pytest.approx([10.0])
    client.max_wait_s = 5.0
    with pytest.raises(Throttled) as caught:
        client.call("GET", "/v1/things")
    assert caught.value.retry_after_s == pytest.approx(10.0)
    assert len(vendor.requests) == 2


def test_a_probe_stopped_by_the_budget_hands_its_turn_on(clock: SleepClock) -> None:
    """If the budget stops the probe before it is sent, the next caller may probe at once."""
    redis = fakeredis.FakeRedis()
    breaker = Breaker(redis, "vendor", "acct", failure_threshold=1, open_interval_s=60, clock=clock)
    breaker.record(breaker.enter(), ok=False)
    budget = Budget(redis, "vendor", "acct", [Limit.window("w", 1, 100.0, jitter_s=0)], clock=clock)
    budget.acquire()
    clock.advance(60)
    client = make(Vendor(), clock, budget=budget, breaker=breaker)
    with pytest.raises(Throttled):
        client.call("GET", "/v1/things")
    assert breaker.enter().probe


def test_log_line_and_metrics_per_try_carry_the_template_not_the_id(clock: SleepClock) -> None:
    """`vendor.call` per try: vendor, account, method, path template, status, attempt; no raw id."""
    vendor = Vendor(status(503), ok())
    client = make(vendor, clock, account="logs")

    def calls(status_class: str) -> float:
        labels = {"vendor": "vendor", "account": "logs", "status_class": status_class}
        return REGISTRY.get_sample_value("hookyard_vendor_calls_total", labels) or 0.0

    before = calls("5xx"), calls("2xx")
    with capture_logs() as logs:
        client.call("GET", "/v1/customers/{id}", path_params={"id": "cus_123"})
    assert vendor.requests[0].url.path == "/v1/customers/cus_123"
    lines = [line for line in logs if line["event"] == "vendor.call"]
    seen = [(x["attempt"], x["status"], x["status_class"]) for x in lines]
    assert seen == [(1, 503, "5xx"), (2, 200, "2xx")]
    assert all(x["path"] == "/v1/customers/{id}" and x["method"] == "GET" for x in lines)
    assert all(x["vendor"] == "vendor" and x["account"] == "logs" and "duration_ms" in x for x in lines)
    assert "cus_123" not in repr(logs)
    assert (calls("5xx") - before[0], calls("2xx") - before[1]) == (1, 1)


def test_throttled_answers_are_counted(clock: SleepClock) -> None:
    """hookyard_vendor_throttled_total counts each answer that said slow down."""
    labels = {"vendor": "vendor", "account": "throttle"}
    before = REGISTRY.get_sample_value("hookyard_vendor_throttled_total", labels) or 0.0
    make(Vendor(status(429), status(429), ok()), clock, account="throttle").call("GET", "/v1/x")
    assert REGISTRY.get_sample_value("hookyard_vendor_throttled_total", labels) == before + 2


def test_path_parameters_are_escaped(clock: SleepClock) -> None:
    """A parameter cannot change the path: '/' and '?' are percent-encoded."""
    vendor = Vendor(ok())
    make(vendor, clock).call("GET", "/v1/customers/{id}", path_params={"id": "a/b?c"})
    assert vendor.requests[0].url.raw_path == b"/v1/customers/a%2Fb%3Fc"


def test_next_links_stay_on_the_vendor(clock: SleepClock) -> None:
    """A next URL from a body is followed on the vendor's host, refused elsewhere (our token goes with it)."""
    vendor = Vendor(ok())
    client = make(vendor, clock)
    client.call("GET", "/api/events", url="https://api.vendor.test/api/events?page%5Bcursor%5D=abc")
    assert vendor.requests[0].url.params["page[cursor]"] == "abc"
    assert vendor.requests[0].headers["authorization"] == "Bearer secret"
    with pytest.raises(PermanentError, match="refusing a link"):
        client.call("GET", "/api/events", url="https://evil.test/api/events")
    assert len(vendor.requests) == 1


def test_one_http_client_per_process() -> None:
    """Clients built without `http=` share the process's one httpx client."""
    assert process_client() is process_client()
    assert VendorClient("v", "a", "https://x.test").http is process_client()


def test_timeouts_are_explicit() -> None:
    """Every request carries connect/read/write/pool timeouts: the client's, or the caller's own."""
    seen: list[dict[str, float]] = []

    def vendor(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return ok()

    http = make_http_client(transport=httpx.MockTransport(vendor))
    VendorClient("v", "a", "https://x.test", http=http).call("GET", "/")
    VendorClient("v", "a", "https://x.test", http=http, timeouts=Timeouts(read_s=90)).call("GET", "/")
    assert seen[0] == {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 5.0}
    assert seen[1] == {"connect": 5.0, "read": 90.0, "write": 30.0, "pool": 5.0}
