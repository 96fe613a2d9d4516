"""Fake Klaviyo: JSON:API lists with filters and links.next, revision header, two fixed windows."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fakes.process import InProcessFake, in_process
from tests.fakes.store import iso

NOW = 1_700_000_040  # a minute boundary
HEADERS = {"Authorization": "Klaviyo-API-Key pk_fake", "revision": "2026-10-15"}


@pytest.fixture
def klaviyo() -> InProcessFake:
    return in_process("klaviyo", {"clock": NOW})


def follow(client: httpx.Client, path: str, **params: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Every item of a listing, following links.next; and the next links seen."""
    page = client.get(path, params=params).json()
    items, links = list(page["data"]), []
    while page["links"]["next"]:
        links.append(page["links"]["next"])
        page = client.get(page["links"]["next"]).json()
        items += page["data"]
    return items, links


def test_an_events_walk_follows_full_next_urls_and_returns_each_event_once(klaviyo: InProcessFake) -> None:
    """greater-than(datetime, X), page[size]=50: every later event once, ascending; next is a full URL."""
    rows = klaviyo.fake.store.rows("events")
    bound = sorted(r.created for r in rows)[100]
    flt = f"greater-than(datetime,{iso(bound)})"
    events, links = follow(
        klaviyo.client(headers=HEADERS), "/api/events", filter=flt, sort="datetime", **{"page[size]": "50"}
    )
    assert sorted(e["id"] for e in events) == sorted(r.key for r in rows if r.created > bound)
    assert [e["attributes"]["timestamp"] for e in events] == sorted(
        e["attributes"]["timestamp"] for e in events
    )
    assert links and all(
        link.startswith("http://fake.test/api/events?") and "page%5Bcursor%5D=" in link for link in links
    )
    assert all("filter=greater-than%28datetime" in link for link in links)


def test_profiles_filter_on_updated_is_exclusive_and_pages_at_most_100(klaviyo: InProcessFake) -> None:
    """greater-than(updated,…) only; page[size] over 100 and greater-or-equal on updated are 400."""
    client = klaviyo.client(headers=HEADERS)
    rows = klaviyo.fake.store.rows("profiles")
    bound = sorted(r.stream for r in rows)[40]
    profiles, _ = follow(
        client, "/api/profiles", filter=f"greater-than(updated,{iso(bound)})", sort="updated"
    )
    assert {p["id"] for p in profiles} == {r.key for r in rows if r.stream > bound}
    for params in (
        {"page[size]": "101"},
        {"filter": f"greater-or-equal(updated,{iso(bound)})"},
        {"sort": "email"},
    ):
        response = client.get("/api/profiles", params=params)
        assert response.status_code == 400, params
        assert response.json()["errors"][0]["source"]["parameter"] in params


def test_a_profile_changed_mid_walk_comes_again_at_the_end(klaviyo: InProcessFake) -> None:
    """Sorted by updated, a profile changed between two pages appears a second time, last."""
    first = min(klaviyo.fake.store.rows("profiles"), key=lambda r: (r.stream, r.id)).key
    klaviyo.control.mutate(
        "profiles", key=first, set={"first_name": "Changed"}, when={"path": "/api/profiles", "after": 1}
    )
    profiles, _ = follow(klaviyo.client(headers=HEADERS), "/api/profiles", sort="updated")
    ids = [p["id"] for p in profiles]
    assert ids.count(first) == 2 and ids[0] == ids[-1] == first
    assert profiles[-1]["attributes"]["first_name"] == "Changed" and len(set(ids)) == 80


def test_the_revision_header_is_required(klaviyo: InProcessFake) -> None:
    """No revision header: 400 with a JSON:API error."""
    response = klaviyo.client(headers={"Authorization": "Klaviyo-API-Key pk_fake"}).get("/api/events")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "missing_revision"
    assert response.headers["content-type"] == "application/vnd.api+json"


def test_success_carries_ratelimit_headers_and_both_windows_answer_429() -> None:
    """Burst 2/s, steady 4/min: RateLimit-* on successes; 429 + Retry-After (no RateLimit-*) from both."""
    klaviyo = in_process("klaviyo", {"clock": NOW + 20, "limits": {"events": [2, 4]}})
    client = klaviyo.client(headers=HEADERS)
    first = client.get("/api/events")
    assert (first.headers["RateLimit-Limit"], first.headers["RateLimit-Remaining"]) == ("4", "3")
    assert first.headers["RateLimit-Reset"] == "40"
    client.get("/api/events")
    burst = client.get("/api/events")
    assert burst.status_code == 429 and burst.headers["Retry-After"] == "1"
    assert "RateLimit-Remaining" not in burst.headers
    assert burst.json()["errors"][0]["code"] == "throttled"
    klaviyo.control.advance(1)
    assert [client.get("/api/events").status_code for _ in range(2)] == [200, 200]
    steady = client.get("/api/events")
    assert steady.status_code == 429 and steady.headers["Retry-After"] == "39"
    client.get("/api/events")  # told to wait 39 s, came back at once
    klaviyo.control.advance(39)
    assert client.get("/api/events").status_code == 200
    stats = klaviyo.control.endpoint("GET /api/events")
    assert (stats["throttled"], stats["violations"]) == (3, 1)


def test_single_profiles_and_auth(klaviyo: InProcessFake) -> None:
    """GET /api/profiles/{id}: the profile, 404 for an unknown id, 401 without a valid key."""
    client = klaviyo.client(headers=HEADERS)
    key = klaviyo.control.objects("profiles")[3]["id"]
    body = client.get(f"/api/profiles/{key}").json()
    assert body["data"]["id"] == key and body["data"]["type"] == "profile"
    assert client.get("/api/profiles/01NOPE").status_code == 404
    denied = klaviyo.client(headers={**HEADERS, "Authorization": "Klaviyo-API-Key pk_wrong"}).get(
        "/api/events"
    )
    assert denied.status_code == 401
