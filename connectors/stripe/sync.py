"""Stripe syncs (apis.md §2): the `events` feed by `created`, mapped exactly as webhooks are.

An event read from `GET /v1/events` is the same object a webhook delivers, so it goes through the
connector's own `normalize`: a record synced and a record delivered agree field for field, and the
event's `created` orders them. Lists are newest first: a walk asks `created[gte]=<since>` and pages
with `starting_after` until `has_more` is false; the cursor keeps `since`, the last id reached and
`top` (the newest `created` read). A finished walk leaves `{"since": top}`; the events of that second
come again and upsert as no-ops. Events created during a walk are newer than its first page: the next
run reads them. Stripe keeps events for 30 days; a first run reads all of them.

A thin event (no `data.object`: it names its object in `related_object`) has itself as subject: the
`events` stream fetches the full event by id, whose snapshot maps to records like any other. A
snapshot event needs no fetch and names none.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from connectors.pagination import by_last_id, dig
from connectors.payloads import obj, parse_time, text
from connectors.streams import Api, Cursor, Page, Reader, Stream, Subject, convert, read
from connectors.stripe.client import StripeHooks
from connectors.stripe.normalize import canonical_type, normalize
from schemas.envelope import Envelope
from schemas.records import Record

PAGE_MAX = 100


class _Data(BaseModel):
    object: dict[str, Any]


class _Event(BaseModel):
    id: str
    type: str
    created: int
    data: _Data


def event_records(item: Any) -> list[Record]:
    """The records of one event, through the webhook mapping (InvalidPayload when they do not fit)."""
    event = read(_Event, item)
    when = datetime.fromtimestamp(event.created, UTC)
    envelope = Envelope(
        id=event.id,
        source="sync",
        vendor="stripe",
        type=canonical_type(event.type),
        dedupe_key=event.id,
        occurred_at=when,
        received_at=when,
        payload=item,
    )
    return normalize(envelope)


def walk(reader: Reader, cursor: Cursor | None) -> Iterator[Page]:
    state = cursor or {}
    since, top = state.get("since"), state.get("top")
    limit = reader.size(PAGE_MAX, PAGE_MAX)

    def fetch(after: str | None) -> Any:
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["created[gte]"] = since
        if after is not None:
            params["starting_after"] = after
        return reader.get("/v1/events", params=params)

    for answer in by_last_id(fetch, state.get("after")):
        data = dig(answer, "data")
        records, rejected = convert(data, event_records)
        created = [e["created"] for e in data if isinstance(e, dict) and type(e.get("created")) is int]
        top = max([t for t in (top, since) if t is not None] + created, default=None)
        if answer["has_more"]:
            yield Page(records, rejected, {"since": since, "after": str(data[-1]["id"]), "top": top})
        else:
            yield Page(records, rejected, {"since": top})


def fetch(reader: Reader, event_id: str) -> Page:
    records, rejected = convert([reader.get("/v1/events/{id}", path_params={"id": event_id})], event_records)
    return Page(records, rejected)


def subjects(envelope: Envelope) -> tuple[Subject, ...]:
    event = obj(envelope.payload)
    event_id = text(event.get("id"))
    if event_id is None or obj(event.get("data")).get("object") is not None:
        return ()
    return (Subject("events", event_id, parse_time(event.get("created"))),)


def rewind(moment: datetime) -> Cursor:
    return {"since": int(moment.timestamp())}


API = Api(
    headers=lambda token, user: {"Authorization": f"Bearer {token}"},
    hooks=StripeHooks(),
    streams={"events": Stream("events", walk=walk, rewind=rewind, fetch=fetch)},
    subjects=subjects,
)
