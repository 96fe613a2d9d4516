"""Klaviyo syncs (apis.md §4): `events` by `datetime` and `profiles` by `updated`, JSON:API pages.

A walk sorts by the time it filters on and follows `links.next` (a full URL on the API's own origin,
which VendorClient checks before our key goes with it) until it is null. The cursor keeps `since`,
the next URL and `seen` (the newest time read); a finished walk leaves `{"since": seen}`. Events allow
`greater-or-equal`; profiles only the exclusive `greater-than`, so their bound starts a second early.
Either way the boundary's records come again and upsert as no-ops. Every call sends the pinned
`revision`. An event names its metric by id: the list carries no metric names (webhooks do).
A webhook's subject is its profile (partial, or only named, in the item), at the `updated` the
item's included profile shows, if any.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel

from connectors.klaviyo.normalize import included, related
from connectors.pagination import by_next_url, dig
from connectors.payloads import obj, parse_time
from connectors.streams import Api, Cursor, Page, Reader, Stream, Subject, convert, newest, read, stamp
from schemas.envelope import Envelope
from schemas.records import MarketingEvent, Profile, Record

REVISION = "2026-10-15"
JSONAPI = "application/vnd.api+json"


class _Id(BaseModel):
    id: str


class _Related(BaseModel):
    data: _Id | None = None


class _EventLinks(BaseModel):
    metric: _Related | None = None
    profile: _Related | None = None


class _EventAttributes(BaseModel):
    datetime: AwareDatetime
    event_properties: dict[str, Any] = {}


class _Event(BaseModel):
    id: str
    attributes: _EventAttributes
    relationships: _EventLinks = _EventLinks()


class _ProfileAttributes(BaseModel):
    email: str | None = None
    phone_number: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    updated: AwareDatetime


class _Profile(BaseModel):
    id: str
    attributes: _ProfileAttributes


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def event(item: Any) -> list[Record]:
    data = read(_Event, item)
    props, links = data.attributes.event_properties, data.relationships
    metric = links.metric.data.id if links.metric and links.metric.data else None
    return [
        MarketingEvent(
            external_id=data.id,
            name=metric or "event",
            profile_id=links.profile.data.id if links.profile and links.profile.data else None,
            email=_text(props.get("$email")),
            campaign_id=_text(props.get("$message")),
            flow_id=_text(props.get("$flow")),
            subject=_text(props.get("Subject")),
            occurred_at=data.attributes.datetime,
        )
    ]


def profile(item: Any) -> list[Record]:
    data = read(_Profile, item)
    attrs = data.attributes
    return [
        Profile(
            external_id=data.id,
            email=attrs.email,
            phone=attrs.phone_number,
            first_name=attrs.first_name,
            last_name=attrs.last_name,
            updated_at=attrs.updated,
        )
    ]


@dataclass(frozen=True)
class Resource:
    name: str  # the path: /api/<name>
    field: str  # the time it filters and sorts on
    operator: str  # greater-or-equal, or greater-than (then the bound starts a second early)
    page_max: int
    to_records: Callable[[Any], list[Record]]
    times: Callable[[Record], datetime | None]

    def walk(self, reader: Reader, cursor: Cursor | None) -> Iterator[Page]:
        state = cursor or {}
        since = state.get("since")
        seen = state.get("seen", since)
        path = f"/api/{self.name}"
        first_url = state.get("next")
        if first_url is None:
            size = reader.size(self.page_max, self.page_max)
            params: dict[str, str | int] = {"sort": self.field, "page[size]": size}
            if since is not None:
                params["filter"] = f"{self.operator}({self.field},{self.bound(since)})"
            first_url = str(reader.client.url(path).copy_merge_params(params))
        for answer in by_next_url(lambda url: reader.get(path, url=url), first_url):
            records, rejected = convert(dig(answer, "data"), self.to_records)
            seen = newest(seen, [self.times(r) for r in records])
            following = dig(answer, "links").get("next")
            yield Page(
                records,
                rejected,
                {"since": since, "next": following, "seen": seen} if following else {"since": seen},
            )

    def bound(self, since: str) -> str:
        if self.operator != "greater-than":
            return since
        return stamp(datetime.fromisoformat(since.replace("Z", "+00:00")) - timedelta(seconds=1))


def fetch_profile(reader: Reader, profile_id: str) -> Page:
    answer = reader.get("/api/profiles/{id}", path_params={"id": profile_id})
    records, rejected = convert([dig(answer, "data")], profile)
    return Page(records, rejected)


def subjects(envelope: Envelope) -> tuple[Subject, ...]:
    payload = obj(obj(envelope.payload).get("payload"))
    profile_id = related(obj(payload.get("data")), "profile")
    if profile_id is None:
        return ()
    person = obj(included(payload, "profile", profile_id).get("attributes"))
    return (Subject("profiles", profile_id, parse_time(person.get("updated"))),)


def since(moment: datetime) -> Cursor:
    return {"since": stamp(moment)}


EVENTS = Resource(
    "events", "datetime", "greater-or-equal", 200, event, lambda r: getattr(r, "occurred_at", None)
)
PROFILES = Resource("profiles", "updated", "greater-than", 100, profile, lambda r: r.updated_at)

API = Api(
    headers=lambda token, user: {
        "Authorization": f"Klaviyo-API-Key {token}",
        "revision": REVISION,
        "accept": JSONAPI,
    },
    streams={
        "events": Stream("events", walk=EVENTS.walk, rewind=since),
        "profiles": Stream("profiles", walk=PROFILES.walk, rewind=since, fetch=fetch_profile),
    },
    subjects=subjects,
)
