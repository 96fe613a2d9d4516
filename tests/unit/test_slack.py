"""Slack: url_verification handshake, event callbacks, slash commands, interactivity, messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import orjson
import pytest
from slack_sdk.signature import SignatureVerifier

import connectors.slack as connector
from connectors.base import SignedRequest
from schemas.envelope import Envelope
from schemas.errors import MalformedError, VerificationError
from schemas.records import Message
from tests.helpers import parse, to_unix, vectors, verify, with_headers

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOCS = [c for c in vectors() if c["vendor"] == "slack" and c["expect"] == "valid"]
CALLBACK = {
    "token": "XXYYZZ",
    "team_id": "T123ABC456",
    "api_app_id": "A123ABC456",
    "type": "event_callback",
    "event": {
        "type": "app_mention",
        "user": "U123ABC456",
        "text": "<@U0LAN0Z89> is it everything a river should be?",
        "ts": "1515449522.000016",
        "channel": "C123ABC456",
        "event_ts": "1515449522000016",
    },
    "event_id": "Ev123ABC456",
    "event_time": 1515449522,
    "authed_users": ["U0LAN0Z89"],
}


def _docs_case(kind: str) -> tuple[SignedRequest, float]:
    case = next(c for c in DOCS if kind in c["note"])
    return SignedRequest(case["body"].encode(), case["headers"]), to_unix(case["now"])


def test_url_verification_is_answered_after_verification() -> None:
    """Slack's documented url_verification verifies, then parses to its challenge and no events."""
    request, now = _docs_case("url_verification")
    verify("slack", request, [SECRET], now)
    parsed = parse("slack", request)
    assert parsed.reply == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    assert parsed.deliveries == []
    with pytest.raises(VerificationError):
        verify("slack", request, ["another-signing-secret"], now)


def test_url_verification_without_challenge_is_malformed() -> None:
    """A url_verification with no challenge cannot be answered."""
    with pytest.raises(MalformedError):
        connector.parse(b'{"type": "url_verification"}', {}, {})


def test_event_callback_keyed_by_event_id_across_retries() -> None:
    """A retry (X-Slack-Retry-Num, fresh timestamp) has the same dedupe key as the first attempt."""
    body = orjson.dumps(CALLBACK)
    first = connector.sign(body, {"Content-Type": "application/json"}, SECRET, 1515449523)
    retry = connector.sign(
        body,
        {
            "Content-Type": "application/json",
            "X-Slack-Retry-Num": "1",
            "X-Slack-Retry-Reason": "http_timeout",
        },
        SECRET,
        1515449583,
    )
    verify("slack", retry, [SECRET], 1515449583)
    keys = [parse("slack", r).deliveries[0].dedupe_key for r in (first, retry)]
    assert keys == ["Ev123ABC456", "Ev123ABC456"]
    (delivery,) = parse("slack", first).deliveries
    assert delivery.type == "slack.app_mention"
    assert delivery.occurred_at == datetime(2018, 1, 8, 22, 12, 2, tzinfo=UTC)


def test_app_mention_normalizes_to_a_message() -> None:
    """The documented app_mention becomes a Message in its channel thread, time from ts."""
    envelope = Envelope(
        id="e",
        source="slack",
        vendor="slack",
        type="slack.app_mention",
        dedupe_key="Ev1",
        received_at=datetime.now(UTC),
        payload=CALLBACK,
    )
    (message,) = connector.normalize(envelope)
    assert message == Message(
        external_id="C123ABC456:1515449522.000016",
        conversation_id="C123ABC456:1515449522.000016",
        direction="inbound",
        author_id="U123ABC456",
        text=CALLBACK["event"]["text"],
        created_at=datetime(2018, 1, 8, 22, 12, 2, 16, tzinfo=UTC),
    )


def test_slash_command_form_is_parsed_from_the_raw_signed_bytes() -> None:
    """The documented slash command verifies over its raw form bytes and is keyed by trigger_id."""
    request, now = _docs_case("slash-command")
    verify("slack", request, [SECRET], now)
    (delivery,) = parse("slack", request).deliveries
    assert delivery.type == "slack.command"
    assert delivery.payload["command"] == "/webhook-collect"
    assert delivery.dedupe_key == "command:398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"


def test_interactivity_payload_is_parsed() -> None:
    """A block_actions interaction (payload=<json> form field) becomes slack.interaction.block_actions."""
    interaction = {
        "type": "block_actions",
        "trigger_id": "12466734323.1395872398",
        "user": {"id": "U1"},
        "actions": [{"action_id": "refund", "value": "order_1042"}],
    }
    body = urlencode({"payload": json.dumps(interaction)}).encode()
    request = connector.sign(body, {"Content-Type": "application/x-www-form-urlencoded"}, SECRET, 1700000000)
    (delivery,) = parse("slack", request).deliveries
    assert (delivery.type, delivery.dedupe_key) == (
        "slack.interaction.block_actions",
        "interaction:12466734323.1395872398",
    )


def test_unknown_payload_types_are_malformed() -> None:
    """A JSON body that is no known Slack payload is refused with 400."""
    with pytest.raises(MalformedError):
        connector.parse(b'{"type": "something_else"}', {}, {})


def test_slack_sdk_signs_what_we_verify_and_verifies_what_we_sign() -> None:
    """slack_sdk's SignatureVerifier and ours agree both ways."""
    request, now = _docs_case("url_verification")
    sdk = SignatureVerifier(SECRET)
    signature = sdk.generate_signature(timestamp="1531420618", body=request.body)
    verify("slack", with_headers(request, x_slack_signature=signature), [SECRET], now)

    class Clock:
        def now(self) -> float:
            return 1700000010.0

    ours = connector.sign(request.body, {}, SECRET, 1700000000)
    assert SignatureVerifier(SECRET, clock=Clock()).is_valid_request(ours.body, ours.headers)
