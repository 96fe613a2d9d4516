"""Fake Stripe: newest-first lists, exclusive cursors, created filters, events, limits, idempotency."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fakes.process import InProcessFake, in_process

NOW = 1_700_000_000
AUTH = {"Authorization": "Bearer sk_test_fake"}


@pytest.fixture
def stripe() -> InProcessFake:
    return in_process("stripe", {"clock": NOW})


def walk(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = []
    while True:
        page = client.get(path, params=params).json()
        data += page["data"]
        if not page["has_more"]:
            return data
        params["starting_after"] = page["data"][-1]["id"]


def test_a_list_walk_returns_every_object_once_newest_first(stripe: InProcessFake) -> None:
    """limit=7 pages with starting_after = last id: all charges, created descending, none twice."""
    charges = walk(stripe.client(headers=AUTH), "/v1/charges", limit=7)
    assert sorted(c["id"] for c in charges) == sorted(o["id"] for o in stripe.control.objects("charges"))
    assert [c["created"] for c in charges] == sorted((c["created"] for c in charges), reverse=True)


def test_cursors_are_exclusive_and_ending_before_pages_back(stripe: InProcessFake) -> None:
    """starting_after X begins just after X; ending_before Y returns the objects just newer than Y."""
    client = stripe.client(headers=AUTH)
    everything = walk(client, "/v1/customers", limit=100)
    ids = [c["id"] for c in everything]
    after = client.get("/v1/customers", params={"limit": 3, "starting_after": ids[5]}).json()
    assert [c["id"] for c in after["data"]] == ids[6:9]
    before = client.get("/v1/customers", params={"limit": 3, "ending_before": ids[5]}).json()
    assert [c["id"] for c in before["data"]] == ids[2:5] and before["has_more"] is True


def test_created_filters_are_inclusive_or_exclusive_as_named(stripe: InProcessFake) -> None:
    """created[gte] keeps the bound, created[gt] drops it."""
    client = stripe.client(headers=AUTH)
    everything = walk(client, "/v1/charges", limit=100)
    bound = everything[10]["created"]
    gte = walk(client, "/v1/charges", limit=100, **{"created[gte]": bound})
    gt = walk(client, "/v1/charges", limit=100, **{"created[gt]": bound})
    assert {c["id"] for c in gte} == {c["id"] for c in everything if c["created"] >= bound}
    assert {c["id"] for c in gt} == {c["id"] for c in everything if c["created"] > bound}


def test_bad_list_parameters_are_400_invalid_request_error(stripe: InProcessFake) -> None:
    """limit over 100, both cursors, an unknown parameter and a missing cursor object are refused."""
    client = stripe.client(headers=AUTH)
    cases = [{"limit": 101}, {"starting_after": "ch_x", "ending_before": "ch_y"}, {"colour": "red"}]
    cases.append({"starting_after": "ch_doesnotexist"})
    for params in cases:
        response = client.get("/v1/charges", params=params)
        assert response.status_code == 400, params
        assert response.json()["error"]["type"] == "invalid_request_error"


def test_events_follow_changes_and_keep_30_days(stripe: InProcessFake) -> None:
    """An update writes customer.updated with previous_attributes; events over 30 days old are not listed."""
    client = stripe.client(headers=AUTH)
    customer = stripe.control.objects("customers")[0]["id"]
    stripe.control.mutate("customers", key=customer, set={"email": "new@example.com"})
    stripe.control.mutate("events", add=1, created_at=NOW - 31 * 86400, set={"type": "charge.refunded"})
    updated = client.get("/v1/events", params={"type": "customer.*", "created[gte]": NOW}).json()["data"]
    assert [e["type"] for e in updated] == ["customer.updated"]
    assert updated[0]["data"]["object"]["email"] == "new@example.com"
    assert updated[0]["data"]["previous_attributes"] == {"email": "customer1@example.com"}
    assert "charge.refunded" not in {e["type"] for e in walk(client, "/v1/events", limit=100)}


def test_deleted_customers_leave_lists_and_read_as_deleted(stripe: InProcessFake) -> None:
    """GET of a deleted customer is {"deleted": true}; lists no longer include it."""
    client = stripe.client(headers=AUTH)
    customer = stripe.control.objects("customers")[0]["id"]
    stripe.control.mutate("customers", key=customer, delete=True)
    assert client.get(f"/v1/customers/{customer}").json() == {
        "id": customer,
        "object": "customer",
        "deleted": True,
    }
    assert customer not in [c["id"] for c in walk(client, "/v1/customers", limit=100)]
    assert client.get("/v1/customers/cus_missing").status_code == 404


def test_the_endpoint_limit_answers_429_without_retry_after() -> None:
    """Over endpoint_per_s: 429 rate_limit, Stripe-Rate-Limited-Reason endpoint-rate, no Retry-After."""
    stripe = in_process("stripe", {"clock": NOW, "limits": {"endpoint_per_s": 2}})
    client = stripe.client(headers=AUTH)
    responses = [client.get("/v1/charges") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    refused = responses[-1]
    assert refused.json()["error"]["code"] == "rate_limit"
    assert refused.headers["Stripe-Rate-Limited-Reason"] == "endpoint-rate"
    assert "Retry-After" not in refused.headers and "Stripe-Should-Retry" not in refused.headers
    assert client.get("/v1/customers").status_code == 200  # another endpoint has its own budget


def test_the_global_limit_spans_endpoints_and_ignoring_it_is_a_violation() -> None:
    """sandbox_per_s=2 across endpoints: the third call is refused; calling again in that second violates."""
    stripe = in_process("stripe", {"clock": NOW, "limits": {"sandbox_per_s": 2}})
    client = stripe.client(headers=AUTH)
    assert client.get("/v1/charges").status_code == client.get("/v1/customers").status_code == 200
    refused = client.get("/v1/events")
    assert refused.headers["Stripe-Rate-Limited-Reason"] == "global-rate"
    client.get("/v1/events")
    stripe.control.advance(1)
    assert client.get("/v1/events").status_code == 200
    stats = stripe.control.endpoint("GET /v1/events")
    assert (stats["requests"], stats["throttled"], stats["violations"]) == (3, 2, 1)


def test_an_idempotency_key_replays_the_first_answer(stripe: InProcessFake) -> None:
    """The same key and body: one customer, the same body replayed; other parameters: idempotency_error."""
    client = stripe.client(headers={**AUTH, "Idempotency-Key": "k-1"})
    first = client.post("/v1/customers", data={"email": "a@example.com", "metadata[order]": "42"})
    again = client.post("/v1/customers", data={"email": "a@example.com", "metadata[order]": "42"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert first.json()["metadata"] == {"order": "42"}
    assert sum(o["attrs"].get("email") == "a@example.com" for o in stripe.control.objects("customers")) == 1
    other = client.post("/v1/customers", data={"email": "b@example.com"})
    assert (other.status_code, other.json()["error"]["type"]) == (400, "idempotency_error")


def test_a_500_is_saved_and_replayed_but_a_429_is_not(stripe: InProcessFake) -> None:
    """Execution began: the injected 500 comes back for the same key. A rate-limited attempt is not saved."""
    stripe.control.fault("error", "/v1/charges", method="POST", status=500)
    client = stripe.client(headers={**AUTH, "Idempotency-Key": "k-500"})
    body = {"amount": "1200", "currency": "usd"}
    assert client.post("/v1/charges", data=body).status_code == 500
    assert client.post("/v1/charges", data=body).status_code == 500  # replayed, not executed
    fresh = stripe.client(headers={**AUTH, "Idempotency-Key": "k-new"}).post("/v1/charges", data=body)
    assert fresh.status_code == 200 and fresh.json()["amount"] == 1200
    limited = in_process("stripe", {"clock": NOW, "limits": {"endpoint_per_s": 0}})
    keyed = limited.client(headers={**AUTH, "Idempotency-Key": "k-429"})
    assert keyed.post("/v1/charges", data=body).status_code == 429
    assert limited.fake.saved == {}


def test_lock_timeout_says_stripe_should_retry(stripe: InProcessFake) -> None:
    """A lock_timeout 429 carries Stripe-Should-Retry: true (an object lock, not a rate limit)."""
    stripe.control.fault("error", "/v1/customers/*", status=429, code="lock_timeout")
    customer = stripe.control.objects("customers")[0]["id"]
    response = stripe.client(headers=AUTH).post(f"/v1/customers/{customer}", data={"name": "X"})
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "lock_timeout"
    assert response.headers["Stripe-Should-Retry"] == "true"


def test_creates_validate_parameters_and_auth(stripe: InProcessFake) -> None:
    """A charge needs amount and currency; a wrong key is 401."""
    missing = stripe.client(headers=AUTH).post("/v1/charges", data={"currency": "usd"})
    assert (missing.status_code, missing.json()["error"]["param"]) == (400, "amount")
    denied = stripe.client(headers={"Authorization": "Bearer sk_test_wrong"}).get("/v1/charges")
    assert denied.status_code == 401 and denied.json()["error"]["type"] == "invalid_request_error"
