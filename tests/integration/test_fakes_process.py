"""Each fake vendor API as a real uvicorn process: it answers, pages, throttles and obeys its control API."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.fakes.process import RunningFake

NOW = 1_700_000_040  # a minute boundary


def shopify(fake: RunningFake) -> None:
    client = fake.client(headers={"X-Shopify-Access-Token": "shpat_fake"})
    query = "query($after: String) { customers(first: 30, after: $after) { nodes { id } "
    query += "pageInfo { endCursor } } }"
    first = client.post("/admin/api/2025-01/graphql.json", json={"query": query}).json()
    cursor = first["data"]["customers"]["pageInfo"]["endCursor"]
    second = client.post(
        "/admin/api/2025-01/graphql.json", json={"query": query, "variables": {"after": cursor}}
    )
    ids = [n["id"] for n in first["data"]["customers"]["nodes"] + second.json()["data"]["customers"]["nodes"]]
    assert len(set(ids)) == 50
    throttled = client.post("/admin/api/2025-01/graphql.json", json={"query": query})
    assert throttled.json()["errors"][0]["extensions"]["code"] == "THROTTLED"


def stripe(fake: RunningFake) -> None:
    client = fake.client(headers={"Authorization": "Bearer sk_test_fake", "Idempotency-Key": "same"})
    created = [client.post("/v1/customers", data={"email": "x@example.com"}) for _ in range(2)]
    assert created[0].json() == created[1].json() and created[1].headers["Idempotent-Replayed"] == "true"
    assert client.get("/v1/customers", params={"limit": 100}).status_code == 429


def zendesk(fake: RunningFake) -> None:
    client = fake.client(auth=("agent@example.com/token", "zd_fake"))
    page = client.get("/api/v2/incremental/tickets/cursor.json", params={"start_time": 0}).json()
    assert len(page["tickets"]) == 150 and page["end_of_stream"] is True
    assert page["after_url"].startswith(fake.url)
    refused = client.get(page["after_url"])
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


def klaviyo(fake: RunningFake) -> None:
    client = fake.client(headers={"Authorization": "Klaviyo-API-Key pk_fake", "revision": "2026-10-15"})
    page = client.get("/api/profiles", params={"page[size]": "50"}).json()
    following = client.get(page["links"]["next"])  # a full URL on this very server
    assert following.status_code == 200 and len(page["data"]) + len(following.json()["data"]) == 80
    refused = client.get("/api/profiles")
    assert refused.status_code == 429 and "Retry-After" in refused.headers


def chatwoot(fake: RunningFake) -> None:
    client = fake.client(headers={"api_access_token": "cw_fake"})
    body = client.get("/api/v1/accounts/1/conversations", params={"status": "all"}).json()
    assert body["data"]["meta"]["all_count"] == 60
    refused = client.get("/api/v1/accounts/1/conversations")
    assert (refused.status_code, refused.text) == (429, "Retry later\n")


def ga4(fake: RunningFake) -> None:
    client = fake.client(headers={"Authorization": "Bearer ya29.fake"})
    body = {"metrics": [{"name": "sessions"}], "dateRanges": [{"startDate": "2daysAgo", "endDate": "today"}]}
    assert client.post("/v1beta/properties/123456:runReport", json=body).json()["rowCount"] == 1
    refused = client.post("/v1beta/properties/123456:runReport", json=body)
    assert refused.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


def slack(fake: RunningFake) -> None:
    client = fake.client(headers={"Authorization": "Bearer xoxb-fake"})
    assert client.post("/api/chat.postMessage", json={"channel": "C0OPS", "text": "hi"}).json()["ok"] is True
    assert client.post("/api/chat.postMessage", json={"channel": "C0OPS", "text": "again"}).status_code == 429
    assert [p["text"] for p in fake.control.posts()] == ["hi"]


# each vendor with a config that makes its second or third call hit a limit
SCENARIOS: dict[str, tuple[dict, Callable[[RunningFake], None]]] = {
    "shopify": ({"limits": {"bucket_size": 70.0}}, shopify),  # 32 points a query
    "stripe": ({"limits": {"sandbox_per_s": 1}}, stripe),  # a replay costs nothing
    "zendesk": ({"limits": {"incremental_per_minute": 1}}, zendesk),
    "klaviyo": ({"limits": {"profiles": [2, 10]}}, klaviyo),
    "chatwoot": ({"limits": {"per_minute": 1}}, chatwoot),
    "ga4": ({"request_tokens": 9000, "limits": {"tokens_per_hour": 10_000}}, ga4),
    "slack": ({}, slack),
}


@pytest.mark.parametrize("vendor", sorted(SCENARIOS))
def test_the_fake_runs_as_a_process_and_throttles_on_config(
    vendor: str, fake_vendor: Callable[..., RunningFake]
) -> None:
    """Started by `python -m tests.fakes`: real HTTP, the vendor's throttle signal, stats via /_fake/."""
    config, scenario = SCENARIOS[vendor]
    fake = fake_vendor(vendor, {"clock": NOW, **config})
    scenario(fake)
    stats = fake.control.stats()
    assert stats["vendor"] == vendor and stats["throttled"] == 1 and stats["requests"] >= 2
    fake.control.reset()
    assert fake.control.stats()["requests"] == 0


def test_a_delay_fault_makes_a_client_time_out(fake_vendor: Callable[..., RunningFake]) -> None:
    """A 2 s delay on one path: a client with a 0.3 s read timeout gets ReadTimeout; other paths answer."""
    fake = fake_vendor("stripe", {"clock": NOW})
    fake.control.fault("delay", "/v1/charges", delay_s=2.0)
    client = fake.client(headers={"Authorization": "Bearer sk_test_fake"}, timeout=0.3)
    with pytest.raises(httpx.ReadTimeout):
        client.get("/v1/charges")
    assert client.get("/v1/customers").status_code == 200
