"""Chatwoot syncs (apis.md §5): `conversations` by page number, `messages` by id, per account.

Chatwoot has no updated-since filter: conversations come latest activity first, page by page. A
walk reads pages until one ends older than the watermark (the newest activity of the previous run's
first page), keeping the conversations at or after it. Page numbers shift under a walk: new activity
moves a conversation to the front (the pages behind repeat one, harmless; the moved one is missed)
and a deletion pulls them back (one is skipped). So a pass ends by reading page 1 again: if its top
conversation and the total count are what the pass began with, nothing moved and the walk is done;
if not, that page starts another pass (at most MAX_PASSES). Anything active after the walk began is
at or after the new watermark, so the next run reads it whatever happened.

Messages ride on the same walk: for each changed conversation, `GET …/messages?after=<id>` (ids are
account-wide and ascending, 100 a page). A message created during a walk in a conversation already
read has an id below some read later, so the id cursor lags one run: a run reads after the highest
id the run before the previous one saw. The messages read twice upsert as no-ops.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel

from connectors.chatwoot.normalize import DIRECTIONS, conversation_record
from connectors.pagination import dig, items_fingerprint
from connectors.streams import Api, Cursor, Page, Reader, Stream, convert, read
from schemas.errors import PaginationLoop
from schemas.records import Message, Record

CONVERSATIONS = "/api/v1/accounts/{account}/conversations"
MESSAGES = CONVERSATIONS + "/{id}/messages"
MESSAGES_PAGE = 100  # what `after=` answers at most
MAX_PASSES = 3
MAX_PAGES = 10_000


class _Conversation(BaseModel):
    id: int
    inbox_id: int | None = None
    status: str | None = None
    created_at: int | None = None
    timestamp: int
    meta: dict[str, Any] = {}


class _Message(BaseModel):
    id: int
    conversation_id: int
    content: str | None = None
    message_type: int | None = None
    private: bool = False
    sender_type: str | None = None
    sender_id: int | None = None
    created_at: int
    updated_at: AwareDatetime | None = None


def conversation(item: Any) -> list[Record]:
    read(_Conversation, item)
    found = conversation_record(item)
    return [found] if found else []


def message(item: Any) -> list[Record]:
    data = read(_Message, item)
    author = f"{(data.sender_type or 'sender').lower()}:{data.sender_id}" if data.sender_id else None
    return [
        Message(
            external_id=str(data.id),
            conversation_id=str(data.conversation_id),
            direction=DIRECTIONS.get(data.message_type) if data.message_type is not None else None,
            author_id=author,
            text=data.content,
            private=data.private,
            created_at=datetime.fromtimestamp(data.created_at, UTC),
            updated_at=data.updated_at,
        )
    ]


def _activity(item: Any) -> int | None:
    value = item.get("last_activity_at") if isinstance(item, dict) else None
    return value if type(value) is int else None


def _top(items: list[Any]) -> list[Any] | None:
    return [items[0].get("id"), _activity(items[0])] if items and isinstance(items[0], dict) else None


def walk_conversations(reader: Reader, cursor: Cursor | None) -> Iterator[tuple[list[Any], Cursor]]:
    """(the conversations of a page active since the watermark, the cursor after that page)."""
    state = cursor or {}
    mark = state.get("watermark")
    walk = dict(state.get("walk") or {"pass": 1, "page": 1})
    seen_pages: set[str] = set()
    for _ in range(MAX_PAGES):
        number = walk["page"]
        answer = reader.get(
            CONVERSATIONS, path_params={"account": reader.account}, params={"status": "all", "page": number}
        )
        items, count = list(dig(answer, "data", "payload")), dig(answer, "data", "meta").get("all_count")
        if number == 1:
            if walk.get("checking"):  # page 1 again: did anything move while the pass walked?
                stable = [_top(items), count] == [walk["top"], walk["count"]]
                if stable or walk["pass"] >= MAX_PASSES:  # when stable, nothing on it is news
                    yield [] if stable else _changed(items, mark), {"watermark": walk["mark"]}
                    return
                walk = {"pass": walk["pass"] + 1, "page": 1, "mark": walk["mark"]}
            seen_pages.clear()
            top = _top(items)
            walk.update(top=top, count=count)
            walk.setdefault("mark", top[1] if top and top[1] is not None else mark)
        fingerprint = items_fingerprint(items)
        if fingerprint is not None and fingerprint in seen_pages:
            raise PaginationLoop(
                f"conversations page {number} repeats an earlier page: the server ignores paging"
            )
        seen_pages.add(fingerprint or "")
        last = _activity(items[-1]) if items else None
        end = not items or (mark is not None and last is not None and last < mark)
        if end:
            walk.update(page=1, checking=True)
        else:
            walk["page"] = number + 1
        yield _changed(items, mark), {"watermark": mark, "walk": dict(walk)}
    raise PaginationLoop(f"conversations: still more after {MAX_PAGES} pages")


def _changed(items: list[Any], mark: int | None) -> list[Any]:
    return [i for i in items if mark is None or (activity := _activity(i)) is None or activity >= mark]


def walk_conversation_pages(reader: Reader, cursor: Cursor | None) -> Iterator[Page]:
    for items, following in walk_conversations(reader, cursor):
        records, rejected = convert(items, conversation)
        yield Page(records, rejected, following)


def walk_messages(reader: Reader, cursor: Cursor | None) -> Iterator[Page]:
    state = cursor or {}
    after, before, seen = state.get("after", 0), state.get("seen"), state.get("seen_now")
    for items, following in walk_conversations(reader, cursor):
        batch: list[Any] = []
        for item in items:
            if isinstance(item, dict) and type(item.get("id")) is int:
                batch += _messages(reader, item["id"], after)
        records, rejected = convert(batch, message)
        seen = max(
            [s for s in (seen,) if s is not None] + [int(r.external_id) for r in records], default=None
        )
        if "walk" in following:
            yield Page(records, rejected, {**following, "after": after, "seen": before, "seen_now": seen})
        else:
            lagging = before if before is not None else after
            yield Page(
                records,
                rejected,
                {**following, "after": lagging, "seen": seen if seen is not None else before},
            )


def _messages(reader: Reader, conversation_id: int, after: int) -> list[Any]:
    """Every message of one conversation after an id, ascending."""
    found: list[Any] = []
    while True:
        params = {"after": after}
        answer = reader.get(
            MESSAGES, path_params={"account": reader.account, "id": conversation_id}, params=params
        )
        payload = list(dig(answer, "payload"))
        found += payload
        ids: list[int] = [m["id"] for m in payload if isinstance(m, dict) and type(m.get("id")) is int]
        if len(payload) < MESSAGES_PAGE or not ids:
            return found
        if max(ids) <= after:
            raise PaginationLoop(f"messages after {after} came back with no newer id")
        after = max(ids)


def fetch_conversation(reader: Reader, conversation_id: str) -> Page:
    answer = reader.get(
        CONVERSATIONS + "/{id}", path_params={"account": reader.account, "id": conversation_id}
    )
    records, rejected = convert([answer], conversation)
    return Page(records, rejected)


def rewind(moment: datetime) -> Cursor:
    return {"watermark": int(moment.timestamp())}


API = Api(
    headers=lambda token, user: {"api_access_token": token},
    account="the Chatwoot account id",
    streams={
        "conversations": Stream(
            "conversations", walk=walk_conversation_pages, rewind=rewind, fetch=fetch_conversation
        ),
        "messages": Stream("messages", walk=walk_messages, rewind=rewind),
    },
)
