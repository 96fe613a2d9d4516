"""Fake Chatwoot Application API (apis.md §5): conversations by page number (`status` default
`open`, `assignee_type`, latest activity first, counts in `meta`), one conversation, and its
messages (`after=<id>`: ascending, at most 100; `before`: the 20 older; neither: the latest 20);
the `api_access_token` header; rack-attack's per-IP limit per minute answering a text/plain
`Retry later` 429 without Retry-After."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes.base import Fake, json_response
from tests.fakes.config import ConfigError
from tests.fakes.limits import FixedWindow
from tests.fakes.store import Record, iso

PREFIX = "/api/v1/accounts/{account_id}/conversations"
STATUSES = ("open", "resolved", "pending", "snoozed")
NOT_FOUND = {"error": "Resource could not be found"}


class ChatwootFake(Fake):
    name = "chatwoot"
    DEFAULTS = {
        "tokens": ["cw_fake"],
        "account_id": 1,
        "agent_id": 1,  # the token's user: assignee_type=me
        "counts": {"conversations": 60, "messages": 400},
        "page_size": 25,
        "limits": {"per_minute": 3000},  # RACK_ATTACK_LIMIT, per client IP
    }

    def setup(self) -> None:
        self.per_ip = FixedWindow("rack-attack", self.config["limits"]["per_minute"], 60.0)

    def routes(self) -> list[Route]:
        return [
            self.route("GET", PREFIX, self.conversations),
            self.route("GET", PREFIX + "/{id}", self.conversation),
            self.route("GET", PREFIX + "/{id}/messages", self.messages),
        ]

    def token(self, request: Request) -> str | None:
        return request.headers.get("api_access_token")

    def unauthorized(self, request: Request, reason: str) -> Response:
        return json_response({"error": "Invalid Access Token"}, 401)

    def error_response(self, request: Request, status: int, code: str) -> Response:
        return json_response({"error": code or f"Injected {status}"}, status)

    def make(self, record: Record) -> None:
        if record.collection == "conversations":
            record.attrs.update(
                status=self.rng.choices(STATUSES, weights=(5, 3, 1, 1))[0],
                inbox_id=self.rng.randint(1, 3),
                assignee_id=self.rng.choice([None, 1, 2, 3]),
                contact_id=self.rng.randint(100, 199),
            )
            return
        conversations = self.store.rows("conversations")
        if not conversations:
            raise ConfigError("messages need at least one conversation")
        conversation = self.rng.choice(conversations)
        record.created = record.updated = record.stream = max(record.created, conversation.created)
        record.attrs.update(
            conversation_id=conversation.id,
            content=f"message {record.id}",
            message_type=self.rng.choices((0, 1, 2), weights=(5, 4, 1))[0],
            private=False,
            sender_type=self.rng.choice(["Contact", "User"]),
            status="sent",
            source_id=None,
        )

    def on_change(self, record: Record, change: str, previous: dict[str, Any]) -> None:
        """A new message is activity on its conversation."""
        if record.collection != "messages" or change != "created":
            return
        conversation = self.store.get("conversations", record.attrs["conversation_id"])
        if conversation is not None:
            conversation.stream = max(conversation.stream, record.stream)
            conversation.updated = max(conversation.updated, record.created)

    def render(self, record: Record) -> dict[str, Any]:
        attrs = record.attrs
        if record.collection == "messages":
            conversation = self.store.get("conversations", attrs["conversation_id"])
            return {
                "id": record.id,
                **attrs,
                "account_id": self.config["account_id"],
                "inbox_id": conversation.attrs["inbox_id"] if conversation else None,
                "created_at": int(record.created),
                "updated_at": iso(record.updated),
                "content_type": "text",
                "content_attributes": {},
                "sender_id": attrs.get("sender_id", 1),
            }
        assignee = attrs.get("assignee_id")
        return {
            "id": record.id,
            "account_id": self.config["account_id"],
            "inbox_id": attrs["inbox_id"],
            "status": attrs["status"],
            "created_at": int(record.created),
            "timestamp": int(record.stream),
            "last_activity_at": int(record.stream),
            "unread_count": 0,
            "labels": [],
            "messages": [],
            "meta": {
                "sender": {"id": attrs["contact_id"]},
                "assignee": {"id": assignee} if assignee else None,
            },
        }

    def refused(self, request: Request) -> Response | None:
        """429 when over the limit, 404 for another account (checked in this order)."""
        client = request.client.host if request.client else "unknown"
        if self.admit(request, [(self.per_ip, client, 1)]).wait_s:
            return PlainTextResponse("Retry later\n", 429)
        if request.path_params["account_id"] != str(self.config["account_id"]):
            return json_response(NOT_FOUND, 404)
        return None

    def found(self, request: Request) -> Record | None:
        raw = request.path_params["id"]
        record = self.store.get("conversations", int(raw)) if raw.isdigit() else None
        return None if record is None or record.deleted else record

    async def conversations(self, request: Request) -> Response:
        if refused := self.refused(request):
            return refused
        query = request.query_params
        status = query.get("status", "open")
        assignee_type = query.get("assignee_type", "all")
        page_text = query.get("page", "1")
        if status not in (*STATUSES, "all") or assignee_type not in ("me", "unassigned", "assigned", "all"):
            return json_response({"error": "Invalid status or assignee_type"}, 400)
        if not page_text.isdigit() or int(page_text) < 1:
            return json_response({"error": "Invalid page"}, 400)
        rows = [r for r in self.store.rows("conversations") if status == "all" or r.attrs["status"] == status]
        me = self.config["agent_id"]
        groups = {
            "mine": [r for r in rows if r.attrs["assignee_id"] == me],
            "unassigned": [r for r in rows if r.attrs["assignee_id"] is None],
            "assigned": [r for r in rows if r.attrs["assignee_id"] is not None],
            "all": rows,
        }
        chosen = groups["mine" if assignee_type == "me" else assignee_type]
        chosen = sorted(chosen, key=lambda r: (r.stream, r.id), reverse=True)
        size = self.config["page_size"]
        start = (int(page_text) - 1) * size
        meta = {f"{name}_count": len(group) for name, group in groups.items()}
        payload = [self.render(r) for r in chosen[start : start + size]]
        return json_response({"data": {"meta": meta, "payload": payload}})

    async def conversation(self, request: Request) -> Response:
        if refused := self.refused(request):
            return refused
        record = self.found(request)
        return json_response(self.render(record)) if record else json_response(NOT_FOUND, 404)

    async def messages(self, request: Request) -> Response:
        if refused := self.refused(request):
            return refused
        conversation = self.found(request)
        if conversation is None:
            return json_response(NOT_FOUND, 404)
        query = request.query_params
        bounds = {name: query[name] for name in ("after", "before") if name in query}
        if not all(v.isdigit() for v in bounds.values()):
            return json_response({"error": "after and before take message ids"}, 400)
        after, before = (int(bounds[n]) if n in bounds else None for n in ("after", "before"))
        rows = [m for m in self.store.rows("messages") if m.attrs["conversation_id"] == conversation.id]
        rows.sort(key=lambda m: (m.created, m.id))
        if after is not None and before is not None:
            rows = [m for m in rows if after <= m.id < before][:1000]
        elif after is not None:
            rows = [m for m in rows if m.id > after][:100]
        elif before is not None:
            rows = [m for m in rows if m.id < before][-20:]
        else:
            rows = rows[-20:]
        assignee = conversation.attrs["assignee_id"]
        meta: dict[str, Any] = {
            "labels": [],
            "additional_attributes": {},
            "contact": {"id": conversation.attrs["contact_id"]},
            "assignee": {"id": assignee} if assignee else None,
            "agent_last_seen_at": None,
            "assignee_last_seen_at": None,
        }
        return json_response({"meta": meta, "payload": [self.render(m) for m in rows]})


FAKE = ChatwootFake
