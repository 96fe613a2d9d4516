"""Fake Zendesk Support API (apis.md §3): the cursor-based incremental ticket export (`start_time`,
then `cursor` = `after_cursor`, `end_of_stream`, changes of the last minute excluded, deleted
tickets as `status: "deleted"` unless `exclude_deleted=true`) and `GET /api/v2/tickets/{id}.json`;
an account limit per minute plus a separate incremental-export limit, 429 + Retry-After."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.base import Fake, json_response
from tests.fakes.limits import Check, FixedWindow, retry_after
from tests.fakes.store import Record, decode_cursor, encode_cursor, iso, keyset

STATUSES = ["new", "open", "pending", "solved", "closed"]
EXPORT = "/api/v2/incremental/tickets/cursor.json"


class ZendeskFake(Fake):
    name = "zendesk"
    DEFAULTS = {
        "tokens": ["zd_fake"],
        "email": "agent@example.com",  # Basic auth is "{email}/token:{api token}"
        "counts": {"tickets": 150},
        "exclusion_s": 60,  # changes this recent are not exported yet
        "per_page_max": 1000,
        "limits": {"per_minute": 700, "incremental_per_minute": 10},
    }

    def setup(self) -> None:
        limits = self.config["limits"]
        self.account = FixedWindow("account", limits["per_minute"], 60.0)
        self.incremental = FixedWindow("incremental", limits["incremental_per_minute"], 60.0)

    def routes(self) -> list[Route]:
        return [
            self.route("GET", EXPORT, self.export),
            self.route("GET", "/api/v2/tickets/{id}.json", self.show),
        ]

    def token(self, request: Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return value
        if scheme.lower() != "basic":
            return None
        try:
            user, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return secret if user == f"{self.config['email']}/token" else None

    def unauthorized(self, request: Request, reason: str) -> Response:
        return json_response({"error": "Couldn't authenticate you"}, 401)

    def error_response(self, request: Request, status: int, code: str) -> Response:
        return json_response({"error": code or "InternalError", "description": f"Injected {status}"}, status)

    def make(self, record: Record) -> None:
        record.attrs.update(
            subject=f"Ticket {record.id}: "
            + self.rng.choice(["printer on fire", "refund", "login", "shipping"]),
            status=self.rng.choice(STATUSES),
            priority=self.rng.choice(["low", "normal", "high", "urgent"]),
            requester_id=self.rng.randint(1000, 1100),
        )

    def render(self, record: Record, base: str) -> dict[str, Any]:
        return {
            "id": record.id,
            "url": f"{base}/api/v2/tickets/{record.id}.json",
            **record.attrs,
            "status": "deleted" if record.deleted else record.attrs.get("status"),
            "created_at": iso(record.created),
            "updated_at": iso(record.updated),
            "generated_timestamp": int(record.stream),
        }

    def limited(self, request: Request, incremental: bool) -> Response | None:
        token = self.token(request) or ""
        checks: list[Check] = [(self.account, token, 1)]
        if incremental:
            checks.append((self.incremental, token, 1))
        verdict = self.admit(request, checks)
        if not verdict.wait_s:
            return None
        body = {
            "error": "APIRateLimitExceeded",
            "description": "Rate limit exceeded; retry after the given seconds.",
        }
        return json_response(body, 429, {"Retry-After": retry_after(verdict.wait_s)})

    def rate_headers(self, request: Request) -> dict[str, str]:
        remaining = int(self.account.remaining(self.token(request) or "", self.now()))
        return {"X-Rate-Limit": str(int(self.account.limit)), "X-Rate-Limit-Remaining": str(remaining)}

    def invalid(self, description: str, error: str = "InvalidValue") -> Response:
        return json_response({"error": error, "description": description}, 400)

    async def export(self, request: Request) -> Response:
        if refused := self.limited(request, incremental=True):
            return refused
        query = request.query_params
        now = self.now()
        if "cursor" in query:
            position = decode_cursor(query["cursor"])
            if position is None or not {"t", "i"} <= set(position):
                return self.invalid("The cursor is not valid.", "InvalidPaginationParameter")
            after = (float(position["t"]), int(position["i"]))
        elif query.get("start_time", "").isdigit():
            start = int(query["start_time"])
            if start > now - self.config["exclusion_s"]:
                return self.invalid("start_time must be at least one minute in the past.")
            after = (float(start), -1)  # on or after start_time
        else:
            return self.invalid("Send start_time (unix seconds) or cursor.")
        try:
            per_page = int(query.get("per_page", self.config["per_page_max"]))
        except ValueError:
            per_page = 0
        if not 1 <= per_page <= self.config["per_page_max"]:
            return self.invalid(f"per_page must be from 1 to {self.config['per_page_max']}.")
        until = now - self.config["exclusion_s"]
        keep_deleted = query.get("exclude_deleted") != "true"
        rows = [r for r in self.store.rows("tickets", deleted=keep_deleted) if r.stream <= until]
        page, more = keyset(rows, lambda r: (r.stream, r.id), after, per_page)
        last = (page[-1].stream, page[-1].id) if page else after
        cursor = encode_cursor({"t": last[0], "i": last[1]})
        base = str(request.base_url).rstrip("/")
        params = {"cursor": cursor} | ({"per_page": str(per_page)} if "per_page" in query else {})
        body = {
            "after_cursor": cursor,
            "after_url": f"{base}{EXPORT}?{urlencode(params)}",
            "before_cursor": None,
            "before_url": None,
            "end_of_stream": not more,
            "tickets": [self.render(r, base) for r in page],
        }
        return json_response(body, headers=self.rate_headers(request))

    async def show(self, request: Request) -> Response:
        if refused := self.limited(request, incremental=False):
            return refused
        raw = request.path_params["id"]
        record = self.store.get("tickets", int(raw)) if raw.isdigit() else None
        if record is None or record.deleted:
            return json_response({"error": "RecordNotFound", "description": "Not found"}, 404)
        base = str(request.base_url).rstrip("/")
        return json_response({"ticket": self.render(record, base)}, headers=self.rate_headers(request))


FAKE = ZendeskFake
