"""Meta batches changes in `entry[]`: one delivery per entry.

Key: `<object>:<entry id>:` + the entry's message ids (Messenger/Instagram `mid`, WhatsApp `wamid`
with its status) when it has any, else its `time` and a hash of its content (Meta sends no delivery
id, and WhatsApp entries have no time).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Delivery, Options, Parsed
from connectors.payloads import items, json_hash, load_object, obj, parse_epoch, text, validated
from schemas.envelope import Envelope
from schemas.errors import MalformedError
from schemas.records import Customer, Message, Record

MESSAGE_CREATED = "conversation.message_created"
MESSAGING_FIELDS = ("postback", "read", "delivery", "reaction", "optin", "referral")


def _messaging_ids(entry: dict[str, Any]) -> list[str]:
    ids = []
    for event in map(obj, items(entry.get("messaging"))):
        mid = text(obj(event.get("message")).get("mid")) or text(obj(event.get("postback")).get("mid"))
        if mid:
            ids.append(mid)
    for change in map(obj, items(entry.get("changes"))):
        value = obj(change.get("value"))
        ids += [m for m in (text(obj(msg).get("id")) for msg in items(value.get("messages"))) if m]
        ids += [
            f"{text(obj(s).get('id'))}:{text(obj(s).get('status'))}"
            for s in items(value.get("statuses"))
            if text(obj(s).get("id"))
        ]
    return ids


def entry_type(kind: str, entry: dict[str, Any]) -> str:
    for event in map(obj, items(entry.get("messaging"))):
        if event.get("message") and not obj(event.get("message")).get("is_echo"):
            return MESSAGE_CREATED
        verb = next((k for k in MESSAGING_FIELDS if k in event), "messaging")
        return f"meta.{kind}.{verb}"
    change = obj(next(iter(items(entry.get("changes"))), None))
    field = text(change.get("field")) or "change"
    if field == "messages" and items(obj(change.get("value")).get("messages")):
        return MESSAGE_CREATED
    if field == "messages" and items(obj(change.get("value")).get("statuses")):
        return f"meta.{kind}.message_status"
    return f"meta.{kind}.{field}"


def entry_key(kind: str, entry: dict[str, Any]) -> str:
    prefix = f"{kind}:{text(entry.get('id')) or '-'}"
    ids = _messaging_ids(entry)
    if len(ids) == 1:
        return f"{prefix}:{ids[0]}"
    if ids:
        return f"{prefix}:ids:{json_hash(sorted(ids))[:32]}"
    return f"{prefix}:{text(entry.get('time')) or '-'}:{json_hash(entry)[:32]}"


def parse(body: bytes, headers: Mapping[str, str], options: Options) -> Parsed:
    payload = load_object(body)
    kind, entries = text(payload.get("object")), payload.get("entry")
    if kind is None or not isinstance(entries, list):
        raise MalformedError("Meta webhook body needs object and entry[]", code="missing_entry")
    deliveries: dict[str, Delivery] = {}
    for entry in map(obj, entries):
        key = entry_key(kind, entry)
        deliveries.setdefault(
            key,
            Delivery(
                dedupe_key=key,
                type=entry_type(kind, entry),
                payload={"object": kind, "entry": entry},
                occurred_at=parse_epoch(entry.get("time")),
            ),
        )
    return Parsed(deliveries=list(deliveries.values()))


def _messenger(entry: dict[str, Any]) -> list[Record]:
    records: list[Record] = []
    for event in map(obj, items(entry.get("messaging"))):
        message = obj(event.get("message"))
        sender = text(obj(event.get("sender")).get("id"))
        if not text(message.get("mid")) or message.get("is_echo"):
            continue
        records.append(
            Message(
                external_id=text(message.get("mid")),
                conversation_id=sender,
                direction="inbound",
                author_id=sender,
                text=text(message.get("text")),
                created_at=parse_epoch(event.get("timestamp")),
            )
        )
    return records


def _whatsapp(entry: dict[str, Any]) -> list[Record]:
    records: list[Record] = []
    for change in map(obj, items(entry.get("changes"))):
        value = obj(change.get("value"))
        for contact in map(obj, items(value.get("contacts"))):
            if text(contact.get("wa_id")):
                records.append(
                    Customer(
                        external_id=text(contact.get("wa_id")),
                        name=text(obj(contact.get("profile")).get("name")),
                    )
                )
        for message in map(obj, items(value.get("messages"))):
            if text(message.get("id")):
                records.append(
                    Message(
                        external_id=text(message.get("id")),
                        conversation_id=text(message.get("from")),
                        direction="inbound",
                        author_id=text(message.get("from")),
                        text=text(obj(message.get("text")).get("body")),
                        created_at=parse_epoch(message.get("timestamp")),
                    )
                )
    return records


@validated
def normalize(envelope: Envelope) -> list[Record]:
    if envelope.type != MESSAGE_CREATED:
        return []
    entry = obj(obj(envelope.payload).get("entry"))
    return _messenger(entry) + _whatsapp(entry)
