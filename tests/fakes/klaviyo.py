"""Fake Klaviyo API (apis.md §4): `/api/events` and `/api/profiles` as JSON:API with filters
(`greater-than(datetime,…)`, `greater-than(updated,…)`, `equals(…)`, `and(…)`), sort, `page[size]`
caps, `links.next` as a full URL carrying `page[cursor]`; `/api/profiles/{id}`; the `revision`
header required; two fixed windows (1 s burst, 1 min steady) per endpoint tier, RateLimit-* headers
on every non-429 answer, 429 + Retry-After."""

from __future__ import annotations

import math
import re
import string
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.base import Fake, json_response
from tests.fakes.limits import FixedWindow, retry_after
from tests.fakes.store import Record, decode_cursor, encode_cursor, iso, keyset, to_unix

JSONAPI = "application/vnd.api+json"
REVISION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.pre)?$")
TERM = re.compile(r"^(?P<op>[a-z-]+)\((?P<field>[a-z_]+),(?P<value>.+)\)$", re.DOTALL)
ORDERED = ("greater-than", "greater-or-equal", "less-than", "less-or-equal")
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "greater-than": lambda a, b: a > b,
    "greater-or-equal": lambda a, b: a >= b,
    "less-than": lambda a, b: a < b,
    "less-or-equal": lambda a, b: a <= b,
    "equals": lambda a, b: a == b,
}
# per resource: filterable field -> operators allowed, and the sorts offered
FILTERS = {
    "events": {
        "datetime": ORDERED,
        "timestamp": ORDERED,
        "metric_id": ("equals",),
        "profile_id": ("equals",),
    },
    "profiles": {
        "updated": ("greater-than", "less-than"),
        "created": ("greater-than", "less-than"),
        "email": ("equals",),
    },
}
SORTS = {"events": ("datetime", "timestamp"), "profiles": ("created", "updated", "id")}
DEFAULT_SORT = {"events": "datetime", "profiles": "id"}
METRICS = {"Xm1PlOrd": "Placed Order", "Xm2Open": "Opened Email", "Xm3Click": "Clicked Email"}
ALPHABET = string.ascii_uppercase + string.digits


def split_top(text: str) -> list[str]:
    """Split on commas outside parentheses and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        elif not quoted and depth == 0 and char == ",":
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def parse_filter(text: str, resource: str) -> list[tuple[str, str, Any]]:
    terms: list[tuple[str, str, Any]] = []
    for part in (p.strip() for p in split_top(text)):
        if part.startswith("and(") and part.endswith(")"):
            terms += parse_filter(part[4:-1], resource)
            continue
        match = TERM.match(part)
        if match is None:
            raise ValueError(f"Invalid filter term: {part!r}")
        op, name, raw = match["op"], match["field"], match["value"].strip()
        if op not in FILTERS[resource].get(name, ()):
            raise ValueError(f"'{op}' is not a valid operator for '{name}' on {resource}")
        value: Any = raw[1:-1] if raw.startswith('"') and raw.endswith('"') else raw
        if name in ("datetime", "timestamp", "updated", "created"):
            value = float(value) if value.isdigit() else to_unix(value)
        terms.append((op, name, value))
    return terms


class KlaviyoFake(Fake):
    name = "klaviyo"
    DEFAULTS = {
        "tokens": ["pk_fake"],
        "counts": {"profiles": 80, "events": 400},
        "page_max": {"events": 200, "profiles": 100},
        "page_default": {"events": 200, "profiles": 20},
        # [burst per second, steady per minute] per endpoint
        "limits": {"events": [350, 3500], "profiles": [75, 750], "profile": [75, 750]},
    }

    def setup(self) -> None:
        self.windows = {
            tier: (FixedWindow(f"{tier}-burst", burst, 1.0), FixedWindow(f"{tier}-steady", steady, 60.0))
            for tier, (burst, steady) in self.config["limits"].items()
        }

    def routes(self) -> list[Route]:
        return [
            self.route("GET", "/api/events", self.lister("events")),
            self.route("GET", "/api/profiles", self.lister("profiles")),
            self.route("GET", "/api/profiles/{id}", self.profile),
        ]

    def token(self, request: Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return value if scheme in ("Klaviyo-API-Key", "Bearer") else None

    def error(
        self, status: int, code: str, detail: str, parameter: str | None = None, **headers: str
    ) -> Response:
        error = {
            "id": str(uuid.uuid4()),  # not from the seeded sequence: errors must not shift the data
            "status": status,
            "code": code,
            "title": detail.split(";")[0],
            "detail": detail,
            "source": {"parameter": parameter} if parameter else {"pointer": "/data/"},
        }
        return json_response({"errors": [error]}, status, headers, JSONAPI)

    def unauthorized(self, request: Request, reason: str) -> Response:
        return self.error(401, "not_authenticated", "Missing or invalid API key or access token.")

    def error_response(self, request: Request, status: int, code: str) -> Response:
        return self.error(status, code or "error", f"Injected {status}.")

    def make(self, record: Record) -> None:
        self.store.name(record, "01" + "".join(self.rng.choice(ALPHABET) for _ in range(24)))
        if record.collection == "profiles":
            record.attrs.update(
                email=f"fan{record.id}@example.com", first_name="Fan", last_name=str(record.id)
            )
            return
        profiles = self.store.rows("profiles")
        record.attrs.update(
            metric_id=self.rng.choice(sorted(METRICS)),
            profile_id=self.rng.choice(profiles).key if profiles else None,
            uuid=str(uuid.UUID(int=self.rng.getrandbits(128))),
            event_properties={"value": round(self.rng.uniform(1, 200), 2)},
        )

    def field_value(self, record: Record, name: str) -> Any:
        """What a filter or sort on `name` compares; times in unix seconds, `updated` = feed position."""
        times = {"datetime": record.created, "timestamp": record.created, "created": record.created}
        times["updated"] = record.stream
        return times[name] if name in times else record.attrs.get(name)

    def render(self, record: Record, base: str, fields: set[str] | None) -> dict[str, Any]:
        attrs = dict(record.attrs)
        if record.collection == "events":
            metric, profile = attrs.pop("metric_id"), attrs.pop("profile_id")
            attrs = {"timestamp": int(record.created), "datetime": iso(record.created, zulu=False), **attrs}
            related = {
                "metric": {"data": {"type": "metric", "id": metric}},
                "profile": {"data": {"type": "profile", "id": profile}},
            }
        else:
            attrs |= {"created": iso(record.created, zulu=False), "updated": iso(record.updated, zulu=False)}
            related = {}
        if fields:
            attrs = {k: v for k, v in attrs.items() if k in fields}
        kind = record.collection[:-1]
        body = {
            "type": kind,
            "id": record.key,
            "attributes": attrs,
            "links": {"self": f"{base}/api/{kind}s/{record.key}/"},
        }
        return body | ({"relationships": related} if related else {})

    def limited(self, request: Request, tier: str) -> tuple[Response | None, dict[str, str]]:
        """The 429 to send, or None and the RateLimit-* headers of the steady window."""
        burst, steady = self.windows[tier]
        token = self.token(request) or ""
        verdict = self.admit(request, [(burst, token, 1), (steady, token, 1)])
        if verdict.wait_s:
            seconds = retry_after(verdict.wait_s)
            detail = f"Request was throttled; expected available in {seconds} seconds."
            return self.error(429, "throttled", detail, **{"Retry-After": seconds}), {}
        now = self.now()
        return None, {
            "RateLimit-Limit": str(int(steady.limit)),
            "RateLimit-Remaining": str(int(steady.remaining(token, now))),
            "RateLimit-Reset": str(math.ceil(steady.reset_in(now))),
        }

    def checked(self, request: Request) -> Response | None:
        revision = request.headers.get("revision")
        if revision is None:
            return self.error(400, "missing_revision", "The revision header is required.")
        if not REVISION.match(revision):
            return self.error(400, "invalid_revision", f"Invalid revision {revision!r}; use YYYY-MM-DD.")
        return None

    def lister(self, resource: str) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            refused, headers = self.limited(request, resource)
            if refused or (refused := self.checked(request)):
                return refused
            return self.listing(request, resource, headers)

        return handler

    def listing(self, request: Request, resource: str, headers: dict[str, str]) -> Response:
        query = request.query_params
        for name in query:
            if name not in (
                "filter",
                "sort",
                "page[cursor]",
                "page[size]",
                "include",
            ) and not name.startswith("fields["):
                return self.error(
                    400, "invalid", f"'{name}' is not a valid query parameter.", name, **headers
                )
        try:
            terms = parse_filter(query["filter"], resource) if "filter" in query else []
        except ValueError as exc:
            return self.error(400, "invalid", str(exc), "filter", **headers)
        sort = query.get("sort", DEFAULT_SORT[resource])
        if sort.lstrip("-") not in SORTS[resource]:
            return self.error(
                400, "invalid", f"'{sort}' is not a valid sort for {resource}.", "sort", **headers
            )
        size_text = query.get("page[size]", str(self.config["page_default"][resource]))
        size = int(size_text) if size_text.isdigit() else 0
        if not 1 <= size <= self.config["page_max"][resource]:
            limit = self.config["page_max"][resource]
            return self.error(
                400, "invalid", f"page[size] must be from 1 to {limit}.", "page[size]", **headers
            )
        field = sort.lstrip("-")

        def position(r: Record) -> tuple[float, int]:
            return (0.0 if field == "id" else float(self.field_value(r, field)), r.id)

        after = None
        if "page[cursor]" in query:
            cursor = decode_cursor(query["page[cursor]"])
            if cursor is None or cursor.get("s") != sort:
                return self.error(400, "invalid", "Invalid page cursor.", "page[cursor]", **headers)
            after = (float(cursor["v"]), int(cursor["i"]))
        rows = [
            r
            for r in self.store.rows(resource)
            if all(OPS[op](self.field_value(r, n), v) for op, n, v in terms)
        ]
        page, more = keyset(rows, position, after, size, descending=sort.startswith("-"))
        base = str(request.base_url).rstrip("/")
        kept = [(k, v) for k, v in query.multi_items() if k != "page[cursor]"]
        following = None
        if more:
            token = encode_cursor({"s": sort, "v": position(page[-1])[0], "i": page[-1].id})
            following = f"{base}{request.url.path}?{urlencode([*kept, ('page[cursor]', token)])}"
        fields = query.get(f"fields[{resource[:-1]}]")
        wanted = set(fields.split(",")) if fields else None
        body = {
            "data": [self.render(r, base, wanted) for r in page],
            "links": {"self": str(request.url), "prev": None, "next": following},
        }
        return json_response(body, headers=headers, media_type=JSONAPI)

    async def profile(self, request: Request) -> Response:
        refused, headers = self.limited(request, "profile")
        if refused or (refused := self.checked(request)):
            return refused
        record = self.store.find("profiles", request.path_params["id"])
        if record is None or record.deleted:
            return self.error(404, "not_found", "A profile with this id was not found.", **headers)
        base = str(request.base_url).rstrip("/")
        body = {"data": self.render(record, base, None), "links": {"self": str(request.url)}}
        return json_response(body, headers=headers, media_type=JSONAPI)


FAKE = KlaviyoFake
