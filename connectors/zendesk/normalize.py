"""Zendesk event webhooks (`zen:event-type:…`) and trigger webhooks → ticket types and records.

Dedupe: the X-Zendesk-Webhook-Invocation-Id header, else the event's own `id`, else a body hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Delivery, Parsed
from connectors.payloads import (
    body_hash,
    is_form,
    items,
    load_form,
    load_object,
    obj,
    parse_time,
    text,
    validated,
)
from connectors.zendesk.options import Options
from schemas.envelope import Envelope
from schemas.records import Message, Record, Ticket

EVENT_PREFIX = "zen:event-type:"
TICKET_EVENTS = {
    "ticket.created": "ticket.created",
    "ticket.comment_added": "ticket.comment_added",
    "ticket.soft_deleted": "ticket.deleted",
    "ticket.permanently_deleted": "ticket.deleted",
}


TICKET_TYPES = ("ticket.created", "ticket.updated", "ticket.comment_added")


def event_type(payload: dict[str, Any], options: Options) -> str:
    kind = text(payload.get("type")) or ""
    if not kind.startswith(EVENT_PREFIX):
        return options.type  # trigger bodies are admin-defined
    name = kind.removeprefix(EVENT_PREFIX)
    if name.startswith("ticket."):
        return TICKET_EVENTS.get(name, "ticket.updated")
    return f"zendesk.{name}"


def parse(body: bytes, headers: Mapping[str, str], options: Options) -> Parsed:
    payload: dict[str, Any] = load_form(body) if is_form(headers) else load_object(body)
    is_event = str(payload.get("type", "")).startswith(EVENT_PREFIX)
    key = (
        headers.get("x-zendesk-webhook-invocation-id")
        or (text(payload.get("id")) if is_event else None)
        or body_hash(body)
    )
    webhook = headers.get("x-zendesk-webhook-id", "")
    return Parsed(
        deliveries=[
            Delivery(
                dedupe_key=f"{webhook}:{key}" if webhook else key,
                type=event_type(payload, options),
                payload=payload,
                occurred_at=parse_time(payload.get("time")),
            )
        ]
    )


def _lower(value: Any) -> str | None:
    value = text(value)
    return value.lower() if value else None


def ticket_record(detail: dict[str, Any]) -> Ticket:
    return Ticket(
        external_id=text(detail.get("id")),
        subject=text(detail.get("subject")),
        status=_lower(detail.get("status")),
        priority=_lower(detail.get("priority")),
        requester_id=text(detail.get("requester_id")),
        assignee_id=text(detail.get("assignee_id")),
        channel=text(obj(detail.get("via")).get("channel")),
        tags=tuple(t for t in (text(tag) for tag in items(detail.get("tags"))) if t),
        created_at=parse_time(detail.get("created_at")),
        updated_at=parse_time(detail.get("updated_at")),
    )


def _comment(ticket_id: str, comment: dict[str, Any], when: Any) -> Message | None:
    if text(comment.get("id")) is None:
        return None
    author = obj(comment.get("author"))
    return Message(
        external_id=text(comment.get("id")),
        conversation_id=ticket_id,
        direction="outbound" if author.get("is_staff") is True else "inbound",
        author_id=text(author.get("id")),
        text=text(comment.get("body")),
        private=comment.get("is_public") is False,
        created_at=parse_time(when),
    )


@validated
def normalize(envelope: Envelope) -> list[Record]:
    payload = obj(envelope.payload)
    detail = obj(payload.get("detail")) or obj(payload.get("ticket"))  # event webhook, or a trigger's body
    if envelope.type not in TICKET_TYPES or not text(detail.get("id")):
        return []
    ticket = ticket_record(detail)
    records: list[Record] = [ticket]
    if envelope.type == "ticket.comment_added":
        comment = obj(obj(payload.get("event")).get("comment"))
        message = _comment(ticket.external_id, comment, payload.get("time"))
        records += [message] if message else []
    return records
