"""Slack Events API callbacks, slash commands and interactivity → deliveries; messages → records.

`url_verification` is answered with its challenge (after verification) and stores nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from connectors.base import Delivery, Options, Parsed
from connectors.payloads import (
    body_hash,
    is_form,
    load_form,
    load_object,
    obj,
    parse_epoch,
    parse_time,
    text,
    validated,
)
from schemas.envelope import Envelope
from schemas.errors import MalformedError
from schemas.records import Message, Record

MESSAGE_TYPES = ("slack.message", "slack.app_mention")


def _form(body: bytes) -> Parsed:
    form = load_form(body)
    if "payload" in form:  # interactivity: block_actions, view_submission, shortcut…
        payload = load_object(form["payload"].encode())
        kind = text(payload.get("type")) or "unknown"
        key = text(payload.get("trigger_id")) or body_hash(body)
        return Parsed(
            deliveries=[
                Delivery(dedupe_key=f"interaction:{key}", type=f"slack.interaction.{kind}", payload=payload)
            ]
        )
    if "command" in form:
        key = form.get("trigger_id") or body_hash(body)
        return Parsed(deliveries=[Delivery(dedupe_key=f"command:{key}", type="slack.command", payload=form)])
    raise MalformedError("form body is neither a slash command nor an interaction", code="unknown_payload")


def parse(body: bytes, headers: Mapping[str, str], options: Options) -> Parsed:
    if is_form(headers):
        return _form(body)
    payload = load_object(body)
    kind = payload.get("type")
    if kind == "url_verification":
        challenge = payload.get("challenge")
        if not isinstance(challenge, str) or not challenge:
            raise MalformedError("url_verification without a challenge", code="missing_challenge")
        return Parsed(reply={"challenge": challenge})
    if kind == "event_callback":
        event_id = text(payload.get("event_id"))
        if event_id is None:
            raise MalformedError("event_callback without event_id", code="missing_id")
        event_type = text(obj(payload.get("event")).get("type")) or "unknown"
        return Parsed(
            deliveries=[
                Delivery(
                    dedupe_key=event_id,
                    type=f"slack.{event_type}",
                    payload=payload,
                    occurred_at=parse_time(payload.get("event_time")),
                )
            ]
        )
    if kind == "app_rate_limited":
        key = f"app_rate_limited:{payload.get('team_id')}:{payload.get('minute_rate_limited')}"
        return Parsed(
            deliveries=[
                Delivery(
                    dedupe_key=key,
                    type="slack.app_rate_limited",
                    payload=payload,
                    occurred_at=parse_time(payload.get("minute_rate_limited")),
                )
            ]
        )
    raise MalformedError(f"unknown Slack payload type {str(kind)[:40]!r}", code="unknown_payload")


@validated
def normalize(envelope: Envelope) -> list[Record]:
    event = obj(obj(envelope.payload).get("event"))
    channel, ts = text(event.get("channel")), text(event.get("ts"))
    if envelope.type not in MESSAGE_TYPES or not channel or not ts:
        return []
    if event.get("subtype") in ("message_changed", "message_deleted"):
        return []  # edits and deletions carry the message in event.message / previous_message
    return [
        Message(
            external_id=f"{channel}:{ts}",
            conversation_id=f"{channel}:{text(event.get('thread_ts')) or ts}",
            direction="outbound" if event.get("bot_id") else "inbound",
            author_id=text(event.get("user")) or text(event.get("bot_id")),
            text=text(event.get("text")),
            created_at=parse_epoch(ts),
        )
    ]
