"""GitHub events → `github.<event>[.<action>]` and, for issues and their comments, records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Delivery, Options, Parsed
from connectors.payloads import is_form, items, load_form, load_object, obj, parse_time, text, validated
from schemas.envelope import Envelope
from schemas.errors import MalformedError
from schemas.records import Message, Record, Ticket


def _payload(body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """A hook's content type is JSON, or form-encoded with the JSON in its `payload` field."""
    if is_form(headers):
        return load_object(load_form(body).get("payload", "").encode())
    return load_object(body)


def parse(body: bytes, headers: Mapping[str, str], options: Options) -> Parsed:
    delivery, event = headers.get("x-github-delivery"), headers.get("x-github-event")
    if not delivery or not event:
        raise MalformedError("missing X-GitHub-Delivery or X-GitHub-Event header", code="missing_header")
    payload = _payload(body, headers)
    action = text(payload.get("action"))
    subject = obj(payload.get("issue") or payload.get("pull_request"))
    return Parsed(
        deliveries=[
            Delivery(
                dedupe_key=delivery,
                type=f"github.{event}.{action}" if action else f"github.{event}",
                payload=payload,
                occurred_at=parse_time(
                    subject.get("updated_at") or obj(payload.get("head_commit")).get("timestamp")
                ),
            )
        ]
    )


def _ticket(issue: dict[str, Any]) -> Ticket:
    return Ticket(
        external_id=text(issue.get("id")),
        subject=text(issue.get("title")),
        status=text(issue.get("state")),
        requester_id=text(obj(issue.get("user")).get("login")),
        assignee_id=text(obj(issue.get("assignee")).get("login")),
        channel="github",
        tags=tuple(t for t in (text(obj(label).get("name")) for label in items(issue.get("labels"))) if t),
        created_at=parse_time(issue.get("created_at")),
        updated_at=parse_time(issue.get("updated_at")),
    )


@validated
def normalize(envelope: Envelope) -> list[Record]:
    payload = obj(envelope.payload)
    issue = obj(payload.get("issue"))
    if not envelope.type.startswith(("github.issues.", "github.issue_comment.")) or not text(issue.get("id")):
        return []
    records: list[Record] = [_ticket(issue)]
    comment = obj(payload.get("comment"))
    if envelope.type == "github.issue_comment.created" and text(comment.get("id")):
        records.append(
            Message(
                external_id=text(comment.get("id")),
                conversation_id=text(issue.get("id")),
                author_id=text(obj(comment.get("user")).get("login")),
                text=text(comment.get("body")),
                created_at=parse_time(comment.get("created_at")),
                updated_at=parse_time(comment.get("updated_at")),
            )
        )
    return records
