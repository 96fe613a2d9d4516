"""Meta: raw-byte signatures over \\u-escaped bodies, the hub.challenge handshake, entry[] batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

import connectors.meta as connector
from connectors.base import Handshake, SignedRequest
from schemas.envelope import Envelope
from schemas.errors import MalformedError, VerificationError
from schemas.records import Customer, Message
from tests.helpers import NOW, parse, vectors, verify

SECRET = "meta_app_secret"
QUERY = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "meatyhamhock"}


def test_handshake_echoes_the_challenge_for_the_right_token() -> None:
    """Meta's documented GET gets its hub.challenge back."""
    assert isinstance(connector, Handshake)
    assert connector.handshake(QUERY, connector.Options(verify_token="meatyhamhock")) == "1158201444"


@pytest.mark.parametrize(
    ("query", "options"),
    [
        (QUERY, {}),
        (QUERY, {"verify_token": ""}),
        (QUERY, {"verify_token": "another-token"}),
        ({**QUERY, "hub.mode": "unsubscribe"}, {"verify_token": "meatyhamhock"}),
        ({k: v for k, v in QUERY.items() if k != "hub.verify_token"}, {"verify_token": "meatyhamhock"}),
        ({**QUERY, "hub.challenge": "<script>alert(1)</script>"}, {"verify_token": "meatyhamhock"}),
        ({**QUERY, "hub.challenge": ""}, {"verify_token": "meatyhamhock"}),
    ],
)
def test_handshake_refusals(query: dict, options: dict) -> None:
    """No configured token, a wrong token or mode, or a challenge that is not a plain token: refused."""
    with pytest.raises(VerificationError):
        connector.handshake(query, connector.Options(**options))


def test_reserialized_body_does_not_verify() -> None:
    """The vector verifies as received; the same JSON re-serialized with real characters does not."""
    case = next(c for c in vectors() if c["vendor"] == "meta")
    request = SignedRequest(case["body"].encode(), case["headers"])
    verify("meta", request, [SECRET])
    reserialized = json.dumps(json.loads(case["body"]), ensure_ascii=False, separators=(",", ":")).encode()
    with pytest.raises(VerificationError):
        verify("meta", SignedRequest(reserialized, case["headers"]), [SECRET])


def test_each_entry_is_a_delivery_with_a_stable_key() -> None:
    """Two page entries give two deliveries; keys use mids when present, else time and content."""
    body = json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": "PAGE_ID",
                    "time": 1458692752478,
                    "messaging": [
                        {
                            "sender": {"id": "PSID"},
                            "recipient": {"id": "PAGE_ID"},
                            "timestamp": 1458692752478,
                            "message": {"mid": "m_1457764197618:41d102a3e1ae206a38", "text": "hello, world!"},
                        }
                    ],
                },
                {
                    "id": "PAGE_ID",
                    "time": 1458692752479,
                    "changes": [{"field": "feed", "value": {"item": "comment"}}],
                },
            ],
        }
    ).encode()
    first, second = parse("meta", connector.sign(body, {}, SECRET, NOW)).deliveries
    assert first.dedupe_key == "page:PAGE_ID:m_1457764197618:41d102a3e1ae206a38"
    assert first.type == "conversation.message_created"
    assert first.occurred_at == datetime(2016, 3, 23, 0, 25, 52, 478000, tzinfo=UTC)
    assert second.dedupe_key.startswith("page:PAGE_ID:1458692752479:") and second.type == "meta.page.feed"
    envelope = Envelope(
        id="e",
        source="fb",
        vendor="meta",
        type=first.type,
        dedupe_key=first.dedupe_key,
        received_at=datetime.now(UTC),
        payload=first.payload,
    )
    assert connector.normalize(envelope) == [
        Message(
            external_id="m_1457764197618:41d102a3e1ae206a38",
            conversation_id="PSID",
            direction="inbound",
            author_id="PSID",
            text="hello, world!",
            created_at=datetime(2016, 3, 23, 0, 25, 52, 478000, tzinfo=UTC),
        )
    ]


def test_whatsapp_message_normalizes_to_contact_and_message() -> None:
    """The WhatsApp sample gives the contact as a Customer and the text as an inbound Message."""
    request = connector.sample(SECRET, NOW)
    assert b"\\u00eb" in request.body  # sent escaped, as Meta does
    (delivery,) = parse("meta", request).deliveries
    envelope = Envelope(
        id="e",
        source="wa",
        vendor="meta",
        type=delivery.type,
        dedupe_key=delivery.dedupe_key,
        received_at=datetime.now(UTC),
        payload=delivery.payload,
    )
    customer, message = connector.normalize(envelope)
    assert customer == Customer(external_id="16505551234", name="Zoë Müller")
    assert isinstance(message, Message) and message.external_id.startswith("wamid.")
    assert (message.conversation_id, message.direction, message.created_at) == (
        "16505551234",
        "inbound",
        datetime.fromtimestamp(NOW - 1, UTC),
    )
    assert delivery.dedupe_key == f"whatsapp_business_account:102290129340398:{message.external_id}"


def test_whatsapp_statuses_are_keyed_per_status() -> None:
    """sent, delivered and read of one wamid are three different events."""

    def status(value: str) -> bytes:
        return json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "WABA",
                        "changes": [
                            {"field": "messages", "value": {"statuses": [{"id": "wamid.X", "status": value}]}}
                        ],
                    }
                ],
            }
        ).encode()

    keys = {
        parse("meta", connector.sign(status(s), {}, SECRET, NOW)).deliveries[0].dedupe_key
        for s in ("sent", "delivered", "read")
    }
    assert len(keys) == 3


@pytest.mark.parametrize(
    "body", [b'{"entry": []}', b'{"object": "page"}', b'{"object": "page", "entry": {}}']
)
def test_bodies_without_object_or_entries_are_malformed(body: bytes) -> None:
    """Meta bodies need an object and an entry[] array."""
    with pytest.raises(MalformedError):
        connector.parse(body, {}, {})
