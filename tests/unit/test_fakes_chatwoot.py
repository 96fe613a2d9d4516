"""Fake Chatwoot: conversations by page, messages by id cursor, token header, rack-attack 429."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fakes.process import InProcessFake, in_process

NOW = 1_700_000_040  # a minute boundary
TOKEN = {"api_access_token": "cw_fake"}
CONVERSATIONS = "/api/v1/accounts/1/conversations"


@pytest.fixture
def chatwoot() -> InProcessFake:
    return in_process("chatwoot", {"clock": NOW})


def pages(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Page numbers from 1 until an empty payload."""
    found, number = [], 1
    while payload := client.get(CONVERSATIONS, params={**params, "page": number}).json()["data"]["payload"]:
        found += payload
        number += 1
    return found


def test_status_all_pages_through_every_conversation_once_latest_first(chatwoot: InProcessFake) -> None:
    """25 a page, latest activity first; status=all covers all 60, the default covers only open ones."""
    client = chatwoot.client(headers=TOKEN)
    everything = pages(client, status="all")
    assert sorted(c["id"] for c in everything) == list(range(1, 61))
    activity = [c["last_activity_at"] for c in everything]
    assert activity == sorted(activity, reverse=True)
    first = client.get(CONVERSATIONS).json()["data"]
    assert {c["status"] for c in pages(client)} == {"open"}
    truth = chatwoot.control.objects("conversations")
    assert first["meta"]["all_count"] == sum(o["attrs"]["status"] == "open" for o in truth)


def test_new_activity_between_pages_shifts_page_numbers(chatwoot: InProcessFake) -> None:
    """Pages are offsets: a conversation active mid-walk jumps to page 1; the walk repeats one, misses it."""
    client = chatwoot.client(headers=TOKEN)
    before = [c["id"] for c in pages(client, status="all")]
    moved = before[49]  # last on page 2
    when = {"path": CONVERSATIONS, "after": 1}
    chatwoot.control.mutate("messages", add=1, set={"conversation_id": moved}, when=when)
    walked = [c["id"] for c in pages(client, status="all")]
    assert len(walked) == 60 and moved not in walked
    assert [i for i in set(walked) if walked.count(i) == 2] == [before[24]]
    assert client.get(CONVERSATIONS, params={"status": "all"}).json()["data"]["payload"][0]["id"] == moved


def test_messages_after_an_id_are_ascending_and_at_most_100() -> None:
    """after=<id>: newer messages ascending, 100 at most; walking by the last id reaches every message."""
    chatwoot = in_process("chatwoot", {"clock": NOW, "counts": {"conversations": 2, "messages": 260}})
    client = chatwoot.client(headers=TOKEN)
    path = f"{CONVERSATIONS}/1/messages"
    seen, after = [], 0
    while batch := client.get(path, params={"after": after}).json()["payload"]:
        assert len(batch) <= 100 and [m["id"] for m in batch] == sorted(m["id"] for m in batch)
        seen += [m["id"] for m in batch]
        after = batch[-1]["id"]
    truth = [o["id"] for o in chatwoot.control.objects("messages") if o["attrs"]["conversation_id"] == 1]
    assert seen == truth and len(truth) > 100
    latest = client.get(path).json()["payload"]
    assert [m["id"] for m in latest] == truth[-20:]
    older = client.get(path, params={"before": truth[-20]}).json()["payload"]
    assert [m["id"] for m in older] == truth[-40:-20]


def test_a_bad_token_is_401_and_another_account_is_404(chatwoot: InProcessFake) -> None:
    """Invalid Access Token, and Resource could not be found."""
    response = chatwoot.client(headers={"api_access_token": "nope"}).get(CONVERSATIONS)
    assert (response.status_code, response.json()) == (401, {"error": "Invalid Access Token"})
    other = chatwoot.client(headers=TOKEN).get("/api/v1/accounts/2/conversations")
    assert (other.status_code, other.json()) == (404, {"error": "Resource could not be found"})


def test_over_the_limit_answers_text_retry_later_without_retry_after() -> None:
    """per_minute=3: the 4th is 429 text/plain "Retry later\\n", no Retry-After; retrying at once violates."""
    chatwoot = in_process("chatwoot", {"clock": NOW, "limits": {"per_minute": 3}})
    client = chatwoot.client(headers=TOKEN)
    responses = [client.get(CONVERSATIONS) for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    refused = responses[3]
    assert refused.text == "Retry later\n" and refused.headers["content-type"].startswith("text/plain")
    assert "Retry-After" not in refused.headers
    chatwoot.control.advance(60)
    assert client.get(CONVERSATIONS).status_code == 200
    assert chatwoot.control.stats()["violations"] == 1
