"""Zendesk syncs (apis.md §3): `tickets` through the cursor-based incremental export.

The first call sends `start_time` (unix seconds; 0 for everything), every later one the `cursor`
the previous page handed back as `after_cursor`; `end_of_stream` ends the walk and its `after_cursor`
is what the next run starts from, so the cursor is always `{"cursor": …}` once a page has been read.
The export orders by `generated_timestamp` and holds back the last minute of changes: a ticket changed
during a walk is exported by a later one, and an `updated_at` older than one already stored is the
out-of-order case the upsert keeps out. Export calls also debit the budget's `incremental` limit
(10 a minute). A token with `user` (the agent's email) authenticates as Basic `user/token:TOKEN`;
without one the token is an OAuth bearer. A ticket event's subject is its ticket (`detail`, or a
trigger's `ticket`), at its `updated_at`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel

from connectors.pagination import by_after_cursor, dig
from connectors.payloads import obj, parse_time, text
from connectors.streams import Api, Cursor, Page, Reader, Stream, Subject, convert, read
from connectors.zendesk.normalize import TICKET_TYPES, ticket_record
from schemas.envelope import Envelope
from schemas.records import Record

EXPORT = "/api/v2/incremental/tickets/cursor.json"
PAGE_MAX = 1000
INCREMENTAL = ("incremental",)  # the budget limit of connectors.budget.VENDOR_LIMITS["zendesk"]


class _Ticket(BaseModel):
    id: int
    subject: str | None = None
    status: str | None = None
    priority: str | None = None
    requester_id: int | None = None
    assignee_id: int | None = None
    tags: list[str] = []
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime


def ticket(item: Any) -> list[Record]:
    read(_Ticket, item)
    return [ticket_record(item)]


def walk(reader: Reader, cursor: Cursor | None) -> Iterator[Page]:
    state = cursor or {}
    size = reader.size(PAGE_MAX, PAGE_MAX)

    def fetch(after: str | None) -> Any:
        params: dict[str, Any] = {"cursor": after} if after else {"start_time": state.get("start_time", 0)}
        if reader.page_size:
            params["per_page"] = size
        return reader.get(EXPORT, params=params, limits=INCREMENTAL)

    for answer in by_after_cursor(fetch, state.get("cursor")):
        records, rejected = convert(dig(answer, "tickets"), ticket)
        yield Page(records, rejected, {"cursor": str(dig(answer, "after_cursor"))})


def fetch(reader: Reader, ticket_id: str) -> Page:
    answer = reader.get("/api/v2/tickets/{id}.json", path_params={"id": ticket_id})
    records, rejected = convert([dig(answer, "ticket")], ticket)
    return Page(records, rejected)


def subjects(envelope: Envelope) -> tuple[Subject, ...]:
    payload = obj(envelope.payload)
    detail = obj(payload.get("detail")) or obj(payload.get("ticket"))
    ticket_id = text(detail.get("id"))
    if envelope.type not in TICKET_TYPES or ticket_id is None:
        return ()
    return (Subject("tickets", ticket_id, parse_time(detail.get("updated_at"))),)


def rewind(moment: datetime) -> Cursor:
    return {"start_time": int(moment.timestamp())}


def headers(token: str, user: str | None) -> dict[str, str]:
    if user is None:
        return {"Authorization": f"Bearer {token}"}
    basic = base64.b64encode(f"{user}/token:{token}".encode()).decode()
    return {"Authorization": f"Basic {basic}"}


API = Api(
    headers=headers,
    streams={"tickets": Stream("tickets", walk=walk, rewind=rewind, fetch=fetch)},
    subjects=subjects,
)
