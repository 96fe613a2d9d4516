"""Zendesk: ISO-8601 timestamps, the two documented signing orders, ticket events → records."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

import connectors.zendesk as connector
from connectors.base import SignedRequest
from connectors.signing import b64_digest
from schemas.envelope import Envelope
from schemas.errors import ConfigError, VerificationError
from schemas.records import Message, Ticket
from tests.helpers import to_unix, verify, with_headers

TEST_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
LEGACY_SECRET = "HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA="
NOW = to_unix("2021-07-25T10:01:00Z")
STATUS_CHANGED = {
    "account_id": 12514403,
    "detail": {
        "actor_id": "8447388090494",
        "assignee_id": "8447388090494",
        "brand_id": "8447346621310",
        "created_at": "2025-01-08T10:12:07Z",
        "description": "ticket_description",
        "external_id": None,
        "group_id": "8447346628638",
        "id": "5158",
        "is_public": True,
        "organization_id": "8447346623262",
        "priority": "LOW",
        "requester_id": "8447388090494",
        "status": "OPEN",
        "subject": "ticket_subject",
        "submitter_id": "8447388090494",
        "tags": ["tag_1"],
        "type": "TASK",
        "updated_at": "2025-01-08T10:12:07Z",
        "via": {"channel": "web_service"},
    },
    "event": {"current": "OPEN", "previous": "NEW"},
    "id": "cbe4028c-7239-495d-b020-f22348516046",
    "subject": "zen:ticket:5158",
    "time": "2025-01-08T10:12:07.672717030Z",
    "type": "zen:event-type:ticket.status_changed",
    "zendesk_event_version": "2022-11-06",
}


def _envelope(payload: dict, headers: dict | None = None) -> Envelope:
    (delivery,) = connector.parse(orjson.dumps(payload), headers or {}, connector.Options()).deliveries
    return Envelope(
        id="e",
        source="zd",
        vendor="zendesk",
        type=delivery.type,
        dedupe_key=delivery.dedupe_key,
        received_at=datetime.now(UTC),
        payload=delivery.payload,
    )


def test_legacy_body_timestamp_order_only_when_configured() -> None:
    """The older docs' example (BODY+TIMESTAMP) verifies only with signature_order=body_timestamp."""
    request = SignedRequest(
        b'{"say": "hello"}',
        {
            "X-Zendesk-Webhook-Signature": "tRDSF7URY8BLCDlaBcQ7FHu051Zk+aAB0NKMP53teMw=",
            "X-Zendesk-Webhook-Signature-Timestamp": "2021-07-25T10:00:00Z",
        },
    )
    verify("zendesk", request, [LEGACY_SECRET], NOW, {"signature_order": "body_timestamp"})
    with pytest.raises(VerificationError):
        verify("zendesk", request, [LEGACY_SECRET], NOW)
    with pytest.raises(ConfigError):
        verify("zendesk", request, [LEGACY_SECRET], NOW, {"signature_order": "sideways"})


@pytest.mark.parametrize("stamp", ["2021-07-25T10:00:00", "1627207200", "25/07/2021 10:00", "yesterday"])
def test_timestamps_must_be_iso8601_with_an_offset(stamp: str) -> None:
    """Naive or non-ISO timestamps are refused before any signature math."""
    request = connector.sign(b"{}", {}, TEST_SECRET, NOW)
    with pytest.raises(VerificationError) as refused:
        verify(
            "zendesk", with_headers(request, x_zendesk_webhook_signature_timestamp=stamp), [TEST_SECRET], NOW
        )
    assert refused.value.code == "bad_timestamp"


def test_offset_timestamps_count_in_utc() -> None:
    """A +02:00 timestamp is the same instant as its UTC twin for the window."""
    body, stamp = b'{"say": "hello"}', "2021-07-25T12:00:30+02:00"
    signature = b64_digest(TEST_SECRET.encode(), stamp.encode() + body)
    request = SignedRequest(
        body, {"X-Zendesk-Webhook-Signature": signature, "X-Zendesk-Webhook-Signature-Timestamp": stamp}
    )
    verify("zendesk", request, [TEST_SECRET], NOW)
    with pytest.raises(VerificationError):
        verify("zendesk", request, [TEST_SECRET], NOW + 400)


def test_dedupe_prefers_invocation_id_then_event_id_then_body_hash() -> None:
    """Keys: webhook id + invocation id header; else the event's id; a trigger body falls back to its hash."""
    headers = {"x-zendesk-webhook-id": "01F1KRFQ6BG29CNWFR60NK5FNY", "x-zendesk-webhook-invocation-id": "835"}
    assert _envelope(STATUS_CHANGED, headers).dedupe_key == "01F1KRFQ6BG29CNWFR60NK5FNY:835"
    assert _envelope(STATUS_CHANGED).dedupe_key == "cbe4028c-7239-495d-b020-f22348516046"
    trigger = {"ticket": {"id": "42", "status": "open"}}
    assert len(_envelope(trigger).dedupe_key) == 64


def test_status_changed_normalizes_field_by_field() -> None:
    """The documented ticket event becomes ticket.updated and a Ticket with lower-case status/priority."""
    envelope = _envelope(STATUS_CHANGED)
    assert envelope.type == "ticket.updated"
    assert connector.normalize(envelope) == [
        Ticket(
            external_id="5158",
            subject="ticket_subject",
            status="open",
            priority="low",
            requester_id="8447388090494",
            assignee_id="8447388090494",
            channel="web_service",
            tags=("tag_1",),
            created_at=datetime(2025, 1, 8, 10, 12, 7, tzinfo=UTC),
            updated_at=datetime(2025, 1, 8, 10, 12, 7, tzinfo=UTC),
        )
    ]


def test_comment_added_also_yields_the_message() -> None:
    """ticket.comment_added gives the Ticket and its comment; a staff author is outbound."""
    payload = {
        **STATUS_CHANGED,
        "type": "zen:event-type:ticket.comment_added",
        "event": {
            "comment": {
                "id": "9001",
                "body": "We are sending a replacement.",
                "is_public": True,
                "author": {"id": "8447388090494", "is_staff": True, "name": "Agent"},
            }
        },
    }
    envelope = _envelope(payload)
    ticket, message = connector.normalize(envelope)
    assert envelope.type == "ticket.comment_added" and isinstance(ticket, Ticket)
    assert message == Message(
        external_id="9001",
        conversation_id="5158",
        direction="outbound",
        author_id="8447388090494",
        text="We are sending a replacement.",
        created_at=datetime(2025, 1, 8, 10, 12, 7, 672717, tzinfo=UTC),
    )


def test_created_deleted_user_and_trigger_types() -> None:
    """ticket.created is canonical, deletions give no records, user events stay zendesk.*."""
    assert _envelope({**STATUS_CHANGED, "type": "zen:event-type:ticket.created"}).type == "ticket.created"
    deleted = _envelope({**STATUS_CHANGED, "type": "zen:event-type:ticket.soft_deleted"})
    assert deleted.type == "ticket.deleted" and connector.normalize(deleted) == []
    assert _envelope({**STATUS_CHANGED, "type": "zen:event-type:user.created"}).type == "zendesk.user.created"
    assert _envelope({"ticket": {"id": "42"}}).type == "zendesk.trigger"
