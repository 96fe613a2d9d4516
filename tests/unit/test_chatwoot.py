"""Chatwoot: "{ts}.{body}" signatures, X-Chatwoot-Delivery keys, documented payloads → records."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

import connectors.chatwoot as connector
from schemas.envelope import Envelope
from schemas.errors import MalformedError
from schemas.records import Conversation, Customer, Message

MESSAGE_CREATED = {
    "id": 118,
    "content": "hi",
    "created_at": "2021-07-23T18:02:48.000Z",
    "message_type": "incoming",
    "content_type": "text",
    "private": False,
    "content_attributes": {},
    "source_id": None,
    "sender": {"id": 14, "name": "little-haze-776", "avatar": "", "type": "contact"},
    "inbox": {"id": 1, "name": "Acme Support"},
    "conversation": {
        "can_reply": True,
        "channel": "Channel::WebWidget",
        "id": 10,
        "inbox_id": 1,
        "contact_inbox": {"id": 12, "contact_id": 14, "inbox_id": 1},
        "meta": {"sender": {"id": 14, "type": "contact"}, "assignee": {"id": 1, "type": "user"}},
        "status": "open",
        "unread_count": 1,
        "timestamp": 1627063369,
    },
    "account": {"id": 1, "name": "Acme Inc"},
    "event": "message_created",
}
DELIVERY = {"x-chatwoot-delivery": "3f2b1c1e-8d6a-4d1b-9a7e-2f5c6b1d0e99"}


def _envelope(payload: dict) -> Envelope:
    (delivery,) = connector.parse(orjson.dumps(payload), DELIVERY, {}).deliveries
    return Envelope(
        id="e",
        source="cw",
        vendor="chatwoot",
        type=delivery.type,
        dedupe_key=delivery.dedupe_key,
        received_at=datetime.now(UTC),
        payload=delivery.payload,
    )


def test_message_created_normalizes_field_by_field() -> None:
    """The documented message_created gives the Message and its Conversation."""
    envelope = _envelope(MESSAGE_CREATED)
    assert (envelope.type, envelope.dedupe_key) == (
        "conversation.message_created",
        DELIVERY["x-chatwoot-delivery"],
    )
    message, conversation = connector.normalize(envelope)
    assert message == Message(
        external_id="118",
        conversation_id="10",
        direction="inbound",
        author_id="contact:14",
        text="hi",
        created_at=datetime(2021, 7, 23, 18, 2, 48, tzinfo=UTC),
    )
    assert conversation == Conversation(
        external_id="10",
        status="open",
        inbox_id="1",
        contact_id="14",
        assignee_id="1",
        channel="Channel::WebWidget",
        updated_at=datetime(2021, 7, 23, 18, 2, 49, tzinfo=UTC),
    )


def test_status_change_and_contact_events() -> None:
    """conversation_resolved maps to conversation.status_changed; contact_created to a Customer."""
    resolved = _envelope(
        {
            "id": 10,
            "status": "resolved",
            "inbox_id": 1,
            "event": "conversation_resolved",
            "meta": {"sender": {"id": 12}},
            "timestamp": 1627063520,
        }
    )
    assert resolved.type == "conversation.status_changed"
    assert connector.normalize(resolved)[0].status == "resolved"
    contact = _envelope({"id": 12, "name": "jane", "email": "jane@acme.inc", "event": "contact_created"})
    assert connector.normalize(contact) == [Customer(external_id="12", name="jane", email="jane@acme.inc")]
    assert _envelope({"id": 12, "event": "webwidget_triggered"}).type == "chatwoot.webwidget_triggered"


def test_documented_utc_suffix_times_are_read() -> None:
    """The sample payload's "2020-03-03 13:05:57 UTC" form is an aware UTC time."""
    payload = {**MESSAGE_CREATED, "created_at": "2020-03-03 13:05:57 UTC"}
    message = connector.normalize(_envelope(payload))[0]
    assert message.created_at == datetime(2020, 3, 3, 13, 5, 57, tzinfo=UTC)


def test_missing_delivery_header_is_malformed() -> None:
    """Without X-Chatwoot-Delivery there is no dedupe key."""
    with pytest.raises(MalformedError):
        connector.parse(orjson.dumps(MESSAGE_CREATED), {}, {})
