"""Streams: what a scheduled sync reads from a vendor's API, as pure orchestration.

A vendor's pull API is one `Api` (how to authenticate, how its answers are judged, its streams),
declared by the connector package as `api` (see connectors.base.ConnectorSpec). A `Stream` walks
one collection through `VendorClient` and connectors.pagination and yields `Page`s:

    for page in stream.walk(reader, cursor):      # cursor: what the last checkpoint saved, or None
        page.records    # canonical records of the items that fit their schema
        page.rejected   # the items that do not, with their field errors (quarantine)
        page.cursor     # where to resume once this page is stored

The caller stores a page's records and its cursor in one transaction (the checkpoint), so a walk
cut short anywhere resumes after the last stored page with no gap. A cursor is JSON-ready and each
stream defines its shape; a stream given `None` starts from the beginning (a full sync). A walk that
ends by itself has reached the present: its last page carries the cursor the next run starts from.

Nothing here touches the database, the clock or Celery: a stream is tested against a fake vendor in
process. `fetch` reads one object by id; `rewind` is the cursor that makes the next run start at a
given time.

Event-driven fetches: a webhook that is thin (Stripe's thin events) or partial (Zendesk tickets,
Klaviyo profiles) names an object the API can read whole. The connector declares how to find it as
`Api.subjects`: a pure function of the stored event giving `Subject`s (stream, object id, and the
version the event announces, its `updated_at`, when it tells one). Which of them a source fetches is
its `[sources.X.fetch]` setting (events.source_api); workers.fetching coalesces and runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from connectors.budget import Priority
from connectors.http import Hooks, VendorClient
from connectors.payloads import json_hash
from schemas.envelope import Envelope
from schemas.errors import InvalidPayload
from schemas.records import Record

Cursor = dict[str, Any]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Rejected:
    """A vendor item that does not fit its schema: quarantined with its field errors, the walk goes on."""

    key: str  # the item's id when it has a readable one, else a hash of the item
    item: Any
    errors: list[dict[str, str]]  # [{"loc": "tickets.updated_at", "msg": "Input should be …"}]


@dataclass(frozen=True)
class Page:
    records: list[Record] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    cursor: Cursor | None = None


@dataclass(frozen=True)
class Reader:
    """What a stream reads with: the source's client, its vendor account id (Chatwoot's account,
    GA4's property) and an optional page size (capped by the stream)."""

    client: VendorClient
    account: str | None = None
    page_size: int | None = None
    priority: Priority = Priority.BACKFILL

    def size(self, default: int, maximum: int) -> int:
        return max(1, min(self.page_size or default, maximum))

    def get(self, path: str, *, cost: float = 1.0, limits: tuple[str, ...] = (), **kwargs: Any) -> Any:
        """A GET's decoded body (path parameters as keyword `path_params`)."""
        return self.client.call("GET", path, priority=self.priority, cost=cost, limits=limits, **kwargs).body

    def post(self, path: str, body: Any, *, cost: float = 1.0, **kwargs: Any) -> Any:
        """A POST of a JSON body that reads (GraphQL, GA4 reports): its decoded answer."""
        return self.client.call("POST", path, json=body, priority=self.priority, cost=cost, **kwargs).body


Walk = Callable[[Reader, Cursor | None], Iterator[Page]]
Fetch = Callable[[Reader, str], Page]
Rewind = Callable[[datetime], Cursor]


@dataclass(frozen=True)
class Stream:
    name: str
    walk: Walk
    rewind: Rewind
    fetch: Fetch | None = None  # one object by id, where the vendor has an endpoint for it


@dataclass(frozen=True)
class Subject:
    """An object an event is about, which a stream's `fetch` can read whole."""

    stream: str
    object_id: str
    version: datetime | None = None  # the object's `updated_at` the event announces; None: unknown


Subjects = Callable[[Envelope], tuple[Subject, ...]]
Credentials = Callable[[str, str | None], dict[str, str]]  # (token, user) → headers


@dataclass(frozen=True)
class Api:
    """A vendor's pull API as syncs use it."""

    headers: Credentials
    streams: Mapping[str, Stream]
    hooks: Hooks = field(default_factory=Hooks)
    account: str = ""  # what a source's `account` is for this vendor; "" when it needs none
    subjects: Subjects | None = None  # the objects an event is about (event-driven fetches); None: none


def field_errors(exc: ValidationError | InvalidPayload) -> list[dict[str, str]]:
    """Readable field errors: pydantic's (location and message) or a refusal's message."""
    if isinstance(exc, InvalidPayload):
        return [{"loc": "", "msg": str(exc)}]
    return [{"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()[:20]]


def item_key(item: Any, id_field: str = "id") -> str:
    """An item's id as text when it has a usable one, else a digest of the whole item."""
    value = item.get(id_field) if isinstance(item, dict) else None
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
        return str(value)[:200]
    return f"sha256:{json_hash(item)}"


def convert(
    items: Iterable[Any], to_records: Callable[[Any], list[Record]], id_field: str = "id"
) -> tuple[list[Record], list[Rejected]]:
    """Map every item to records; an item its schema refuses is rejected, its neighbours go on."""
    records: list[Record] = []
    rejected: list[Rejected] = []
    for item in items:
        try:
            records += to_records(item)
        except (ValidationError, InvalidPayload) as exc:
            rejected.append(Rejected(item_key(item, id_field), item, field_errors(exc)))
    return records, rejected


def read(model: type[M], item: Any) -> M:
    """The item through its schema (ValidationError with field errors when it does not fit)."""
    return model.model_validate(item)


def stamp(moment: datetime) -> str:
    """A time for a cursor: ISO-8601 in UTC to the second, `Z` suffix (sorts as text)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def newest(current: str | None, moments: Iterable[datetime | None]) -> str | None:
    """The cursor time `current` moved to the newest of `moments` (never back)."""
    stamps = [stamp(m) for m in moments if m is not None]
    return max([*stamps, *([current] if current else [])], default=None)
