"""Fake Zendesk: the cursor-based incremental ticket export, single tickets, both rate limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fakes.process import InProcessFake, in_process

NOW = 1_700_000_040  # a minute boundary
EXPORT = "/api/v2/incremental/tickets/cursor.json"
BEARER = {"headers": {"Authorization": "Bearer zd_fake"}}


@pytest.fixture
def zendesk() -> InProcessFake:
    return in_process("zendesk", {"clock": NOW})


def export_all(client: httpx.Client, first: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Follow after_url until end_of_stream; the tickets and the last page (its after_cursor persists)."""
    page = client.get(EXPORT, params=first).json()
    tickets = list(page["tickets"])
    while not page["end_of_stream"]:
        page = client.get(page["after_url"]).json()
        tickets += page["tickets"]
    return tickets, page


def test_an_export_walk_returns_every_ticket_once_and_ends_the_stream(zendesk: InProcessFake) -> None:
    """start_time=0, per_page=40: all 150 tickets once, by generated_timestamp; after_url is a full URL."""
    client = zendesk.client(**BEARER)
    first = client.get(EXPORT, params={"start_time": 0, "per_page": 40}).json()
    assert (
        first["after_url"].startswith(f"http://fake.test{EXPORT}?cursor=") and first["end_of_stream"] is False
    )
    tickets, last = export_all(client, {"start_time": 0, "per_page": 40})
    assert sorted(t["id"] for t in tickets) == list(range(1, 151))
    stamps = [t["generated_timestamp"] for t in tickets]
    assert stamps == sorted(stamps) and last["end_of_stream"] is True


def test_start_time_is_inclusive(zendesk: InProcessFake) -> None:
    """Tickets changed on or after start_time, not before."""
    rows = zendesk.fake.store.rows("tickets")
    start = int(sorted(r.stream for r in rows)[75])
    tickets, _ = export_all(zendesk.client(**BEARER), {"start_time": start})
    assert {t["id"] for t in tickets} == {r.id for r in rows if r.stream >= start}


def test_changes_of_the_last_minute_wait_for_the_next_call(zendesk: InProcessFake) -> None:
    """A ticket changed now is excluded for a minute; then the stored cursor brings it, new status."""
    client = zendesk.client(**BEARER)
    _, last = export_all(client, {"start_time": 0})
    zendesk.control.mutate("tickets", id=7, set={"status": "solved"})
    assert client.get(EXPORT, params={"cursor": last["after_cursor"]}).json()["tickets"] == []
    zendesk.control.advance(61)
    later = client.get(EXPORT, params={"cursor": last["after_cursor"]}).json()
    assert [(t["id"], t["status"]) for t in later["tickets"]] == [(7, "solved")]
    assert later["end_of_stream"] is True


def test_a_too_recent_start_time_is_refused(zendesk: InProcessFake) -> None:
    """start_time must be at least a minute in the past."""
    response = zendesk.client(**BEARER).get(EXPORT, params={"start_time": NOW - 30})
    assert response.status_code == 400 and response.json()["error"] == "InvalidValue"


def test_deleted_tickets_come_with_status_deleted_unless_excluded(zendesk: InProcessFake) -> None:
    """A deleted ticket is exported as status "deleted"; exclude_deleted=true leaves it out; show is 404."""
    client = zendesk.client(**BEARER)
    zendesk.control.mutate("tickets", id=9, delete=True)
    zendesk.control.advance(61)
    everything, _ = export_all(client, {"start_time": 0})
    assert [t["status"] for t in everything if t["id"] == 9] == ["deleted"]
    kept, _ = export_all(client, {"start_time": 0, "exclude_deleted": "true"})
    assert 9 not in {t["id"] for t in kept}
    assert client.get("/api/v2/tickets/9.json").status_code == 404


def test_out_of_order_updated_at_is_exported_after_newer_ones(zendesk: InProcessFake) -> None:
    """The generated_timestamp case: a ticket re-exported with an updated_at older than what came before."""
    client = zendesk.client(**BEARER)
    before, last = export_all(client, {"start_time": 0})
    zendesk.control.mutate("tickets", id=1, updated_at=NOW - 5 * 86400)
    zendesk.control.advance(61)
    (ticket,) = client.get(EXPORT, params={"cursor": last["after_cursor"]}).json()["tickets"]
    assert ticket["id"] == 1 and ticket["updated_at"] < max(t["updated_at"] for t in before)
    assert ticket["generated_timestamp"] >= NOW


def test_the_incremental_limit_is_separate_and_answers_429_with_retry_after() -> None:
    """10/min on the export: the 11th gets 429 + Retry-After to the minute's end; single tickets answer."""
    zendesk = in_process("zendesk", {"clock": NOW + 15})
    client = zendesk.client(**BEARER)
    statuses = [client.get(EXPORT, params={"start_time": 0}).status_code for _ in range(11)]
    assert statuses == [200] * 10 + [429]
    refused = client.get(EXPORT, params={"start_time": 0})
    assert refused.headers["Retry-After"] == "45"
    shown = client.get("/api/v2/tickets/1.json")
    assert shown.status_code == 200 and shown.headers["X-Rate-Limit"] == "700"
    assert shown.headers["X-Rate-Limit-Remaining"] == str(700 - 10 - 1)
    zendesk.control.advance(45)
    assert client.get(EXPORT, params={"start_time": 0}).status_code == 200
    stats = zendesk.control.endpoint(f"GET {EXPORT}")
    assert (stats["throttled"], stats["violations"]) == (2, 1)


def test_basic_token_auth_and_bearer_both_work(zendesk: InProcessFake) -> None:
    """{email}/token:T as Basic, or Bearer; anything else is 401 Couldn't authenticate you."""
    basic = zendesk.client(auth=("agent@example.com/token", "zd_fake"))
    assert basic.get("/api/v2/tickets/1.json").json()["ticket"]["id"] == 1
    wrong_user = zendesk.client(auth=("someone@example.com/token", "zd_fake"))
    response = wrong_user.get("/api/v2/tickets/1.json")
    assert response.status_code == 401 and response.json() == {"error": "Couldn't authenticate you"}
