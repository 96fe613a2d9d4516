"""Chatwoot events → conversation/contact types; messages, conversations and contacts → records.

Dedupe on X-Chatwoot-Delivery: Sidekiq retries reuse it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Delivery, Options, Parsed
from connectors.payloads import load_object, obj, parse_time, text, validated
from schemas.envelope import Envelope
from schemas.errors import MalformedError
from schemas.records import Conversation, Customer, Message, Record

EVENTS = {
    "message_created": "conversation.message_created",
    "message_updated": "conversation.message_updated",
    "conversation_created": "conversation.created",
    "conversation_updated": "conversation.updated",
    "conversation_status_changed": "conversation.status_changed",
    "conversation_resolved": "conversation.status_changed",
    "conversation_opened": "conversation.status_changed",
    "contact_created": "customer.created",
    "contact_updated": "customer.updated",
}
DIRECTIONS = {"incoming": "inbound", "outgoing": "outbound", 0: "inbound", 1: "outbound"}


def parse(body: bytes, headers: Mapping[str, str], options: Options) -> Parsed:
    delivery = headers.get("x-chatwoot-delivery")
    if not delivery:
        raise MalformedError("missing X-Chatwoot-Delivery header", code="missing_header")
    payload = load_object(body)
    event = text(payload.get("event")) or "unknown"
    return Parsed(
        deliveries=[
            Delivery(
                dedupe_key=delivery,
                type=EVENTS.get(event, f"chatwoot.{event}"),
                payload=payload,
                occurred_at=parse_time(payload.get("created_at")) or parse_time(payload.get("timestamp")),
            )
        ]
    )


def _time(value: Any) -> Any:
    """Chatwoot sends ISO strings, unix seconds, or "2020-03-03 13:05:57 UTC"."""
    if isinstance(value, str) and value.endswith(" UTC"):
        value = value.removesuffix(" UTC").replace(" ", "T") + "Z"
    return parse_time(value)


def conversation_record(data: dict[str, Any]) -> Conversation | None:
    if text(data.get("id")) is None:
        return None
    meta = obj(data.get("meta"))
    return Conversation(
        external_id=text(data.get("id")),
        status=text(data.get("status")),
        inbox_id=text(data.get("inbox_id")),
        contact_id=(
            text(obj(meta.get("sender")).get("id")) or text(obj(data.get("contact_inbox")).get("contact_id"))
        ),
        assignee_id=text(obj(meta.get("assignee")).get("id")),
        channel=text(data.get("channel")),
        created_at=_time(data.get("created_at")),
        updated_at=_time(data.get("timestamp")),
    )


def _message(data: dict[str, Any]) -> list[Record]:
    conversation = conversation_record(obj(data.get("conversation")))
    sender = obj(data.get("sender"))
    sender_id = text(sender.get("id"))
    direction = data.get("message_type")
    message = Message(
        external_id=text(data.get("id")),
        conversation_id=conversation.external_id if conversation else None,
        direction=DIRECTIONS.get(direction) if isinstance(direction, str | int) else None,
        author_id=f"{text(sender.get('type')) or 'sender'}:{sender_id}" if sender_id else None,
        text=text(data.get("content")),
        private=data.get("private") is True,
        created_at=_time(data.get("created_at")),
    )
    return [message, conversation] if conversation else [message]


@validated
def normalize(envelope: Envelope) -> list[Record]:
    data = obj(envelope.payload)
    if text(data.get("id")) is None:
        return []
    if envelope.type in ("conversation.message_created", "conversation.message_updated"):
        return _message(data)
    if envelope.type in ("conversation.created", "conversation.updated", "conversation.status_changed"):
        conversation = conversation_record(data)
        return [conversation] if conversation else []
    if envelope.type in ("customer.created", "customer.updated"):
        return [
            Customer(
                external_id=text(data.get("id")), email=text(data.get("email")), name=text(data.get("name"))
            )
        ]
    return []
