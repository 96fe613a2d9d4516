"""Fake Slack: chat.postMessage (HTTP 200 errors, 1/s per channel), incoming webhooks, recorded posts."""

from __future__ import annotations

import pytest

from tests.fakes.process import InProcessFake, in_process

NOW = 1_700_000_000
BOT = {"Authorization": "Bearer xoxb-fake"}
POST = "/api/chat.postMessage"
HOOK = "/services/T0FAKE/B0FAKE/fakesecret"


@pytest.fixture
def slack() -> InProcessFake:
    return in_process("slack", {"clock": NOW})


def test_a_message_is_accepted_recorded_and_answered_with_its_ts(slack: InProcessFake) -> None:
    """JSON or form bodies; channels by id or #name; each accepted post recorded once with its ts."""
    client = slack.client(headers=BOT)
    first = client.post(POST, json={"channel": "#alerts", "text": "disk full"}).json()
    second = client.post(POST, data={"channel": "C0OPS", "text": "deploy done"}).json()
    assert first["ok"] is True and first["channel"] == "C0ALERTS" and first["ts"] != second["ts"]
    posts = slack.control.posts()
    assert [(p["channel"], p["text"], p["ts"]) for p in posts] == [
        ("C0ALERTS", "disk full", first["ts"]),
        ("C0OPS", "deploy done", second["ts"]),
    ]


@pytest.mark.parametrize(
    ("headers", "body", "error"),
    [
        ({}, {"channel": "C0OPS", "text": "x"}, "not_authed"),
        ({"Authorization": "Bearer xoxb-wrong"}, {"channel": "C0OPS", "text": "x"}, "invalid_auth"),
        (BOT, {"channel": "#nowhere", "text": "x"}, "channel_not_found"),
        (BOT, {"channel": "C0PRIVATE", "text": "x"}, "not_in_channel"),
        (BOT, {"channel": "C0OPS"}, "no_text"),
    ],
)
def test_web_api_errors_are_http_200_with_ok_false(
    slack: InProcessFake, headers: dict, body: dict, error: str
) -> None:
    """Slack reports errors in the body with HTTP 200; nothing is recorded."""
    response = slack.client(headers=headers).post(POST, json=body)
    assert (response.status_code, response.json()) == (200, {"ok": False, "error": error})
    assert slack.control.posts() == []


def test_one_message_per_second_per_channel_then_ratelimited(slack: InProcessFake) -> None:
    """A second post to a channel in the same second: 429, Retry-After, ratelimited; others unaffected."""
    client = slack.client(headers=BOT)
    assert client.post(POST, json={"channel": "C0OPS", "text": "1"}).status_code == 200
    limited = client.post(POST, json={"channel": "C0OPS", "text": "2"})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert limited.json() == {"ok": False, "error": "ratelimited"}
    assert client.post(POST, json={"channel": "C0ALERTS", "text": "3"}).status_code == 200
    client.post(POST, json={"channel": "C0OPS", "text": "4"})  # did not wait
    slack.control.advance(1)
    assert client.post(POST, json={"channel": "C0OPS", "text": "5"}).status_code == 200
    assert [p["text"] for p in slack.control.posts()] == ["1", "3", "5"]
    stats = slack.control.endpoint(f"POST {POST}")
    assert (stats["throttled"], stats["violations"]) == (2, 1)


def test_incoming_webhooks_answer_ok_and_refuse_unknown_urls(slack: InProcessFake) -> None:
    """A configured webhook answers text "ok" and records the post; a revoked URL is 404 no_service."""
    client = slack.client()
    response = client.post(HOOK, json={"text": "from a webhook"})
    assert (response.status_code, response.text) == (200, "ok")
    assert slack.control.posts()[0] | {"ts": None} == {
        "kind": "webhook",
        "channel": "C0ALERTS",
        "text": "from a webhook",
        "blocks": None,
        "ts": None,
        "thread_ts": None,
    }
    gone = client.post("/services/T0FAKE/B0FAKE/revoked", json={"text": "x"})
    assert (gone.status_code, gone.text) == (404, "no_service")
    bad = client.post(HOOK, content=b"{not json")
    assert (bad.status_code, bad.text) == (400, "invalid_payload")


def test_an_injected_internal_error_keeps_slacks_shape(slack: InProcessFake) -> None:
    """An error fault with status 200 answers {"ok": false, "error": code}; the message is not recorded."""
    slack.control.fault("error", POST, status=200, code="internal_error")
    response = slack.client(headers=BOT).post(POST, json={"channel": "C0OPS", "text": "x"})
    assert (response.status_code, response.json()) == (200, {"ok": False, "error": "internal_error"})
    assert slack.control.posts() == []
