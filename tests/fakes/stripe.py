"""Fake Stripe API (apis.md §2): lists and events newest first with exclusive `starting_after` /
`ending_before`, `created[gt|gte|lt|lte]`, `has_more`; single objects (deleted customers as
`{"deleted": true}`); form-encoded creates and updates with `Idempotency-Key` replay; a per-second
global limit (sandbox or live by key) and per-endpoint limit answering 429 without Retry-After."""

from __future__ import annotations

import base64
import copy
import fnmatch
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.base import Fake, json_response, read_form
from tests.fakes.limits import FixedWindow
from tests.fakes.store import Record, keyset

OBJECTS = {
    "customers": ("cus", "customer"),
    "charges": ("ch", "charge"),
    "payment_intents": ("pi", "payment_intent"),
}
CREATED_EVENT = {
    "customer": "customer.created",
    "charge": "charge.succeeded",
    "payment_intent": "payment_intent.created",
}
CREATE_PARAMS = {
    "customers": ({"email", "name", "description"}, set()),
    "charges": ({"amount", "currency", "customer", "description"}, {"amount", "currency"}),
    "payment_intents": ({"amount", "currency", "customer", "description"}, {"amount", "currency"}),
}
CREATED = {
    "created": float.__eq__,
    "created[gt]": float.__gt__,
    "created[gte]": float.__ge__,
    "created[lt]": float.__lt__,
    "created[lte]": float.__le__,
}
LIST_PARAMS = {"limit", "starting_after", "ending_before", "expand[]", *CREATED}
EVENT_PARAMS = LIST_PARAMS | {"type", "types[]", "delivery_success"}
ALPHABET = string.ascii_letters + string.digits


@dataclass
class Saved:
    """A stored first answer for an idempotency key (`body` None while the first request runs)."""

    fingerprint: tuple[str, bytes]
    at: float
    status: int = 0
    body: bytes | None = None


class StripeFake(Fake):
    name = "stripe"
    DEFAULTS = {
        "tokens": ["sk_test_fake"],
        "counts": {"customers": 40, "charges": 80, "payment_intents": 30},
        "api_version": "2024-06-20",
        "events_days": 30,  # /v1/events goes back this far
        "idempotency_ttl_s": 86400,  # keys may be pruned after 24 h
        "limits": {"live_per_s": 100, "sandbox_per_s": 25, "endpoint_per_s": 25},
    }

    def setup(self) -> None:
        limits = self.config["limits"]
        self.live = FixedWindow("global-rate", limits["live_per_s"], 1.0)
        self.sandbox = FixedWindow("global-rate", limits["sandbox_per_s"], 1.0)
        self.per_endpoint = FixedWindow("endpoint-rate", limits["endpoint_per_s"], 1.0)
        self.saved: dict[tuple[str, str], Saved] = {}
        self.answered = 0

    def routes(self) -> list[Route]:
        routes = [
            self.route("GET", "/v1/events", self.lister("events", EVENT_PARAMS)),
            self.route("GET", "/v1/events/{id}", self.getter("events")),
        ]
        for collection in OBJECTS:
            routes += [
                self.route("GET", f"/v1/{collection}", self.lister(collection, LIST_PARAMS)),
                self.route("GET", f"/v1/{collection}/{{id}}", self.getter(collection)),
                self.route("POST", f"/v1/{collection}", self.writer(collection)),
                self.route("POST", f"/v1/{collection}/{{id}}", self.writer(collection)),
            ]
        return routes

    # ----- auth, errors, limits -----------------------------------------------------------------
    def token(self, request: Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return value
        if scheme.lower() == "basic":
            return base64.b64decode(value + "==").decode(errors="replace").partition(":")[0]
        return None

    def error(self, status: int, kind: str, message: str, **extra: Any) -> Response:
        headers = {"Stripe-Should-Retry": "true"} if extra.get("code") == "lock_timeout" else {}
        headers.update(extra.pop("headers", {}))
        return self.answer({"error": {"type": kind, "message": message, **extra}}, status, headers)

    def answer(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        self.answered += 1  # request ids do not draw from the data's random sequence
        request_id = f"req_fake{self.answered:010d}"
        return json_response(body, status, {"Request-Id": request_id, **(headers or {})})

    def unauthorized(self, request: Request, reason: str) -> Response:
        if reason == "expired":
            return self.error(
                401, "invalid_request_error", "Expired API key provided.", code="api_key_expired"
            )
        text = "No API key provided." if reason == "missing" else "Invalid API key provided."
        return self.error(401, "invalid_request_error", text)

    def error_response(self, request: Request, status: int, code: str) -> Response:
        kind = "api_error" if status >= 500 else "invalid_request_error"
        return self.error(status, kind, f"Injected {status} ({code or 'fault'}).", code=code or None)

    def throttled(self, request: Request) -> Response | None:
        token = self.token(request) or ""
        window = self.live if token.startswith(("sk_live", "rk_live")) else self.sandbox
        verdict = self.admit(
            request, [(window, token, 1), (self.per_endpoint, f"{token} {request.state.label}", 1)]
        )
        if not verdict.wait_s:
            return None
        return self.error(
            429,
            "invalid_request_error",
            "Too many requests hit the API too quickly; back off exponentially and retry.",
            code="rate_limit",
            headers={"Stripe-Rate-Limited-Reason": verdict.refused_by},
        )

    def invalid(self, message: str, param: str, code: str = "parameter_invalid") -> Response:
        return self.error(400, "invalid_request_error", message, code=code, param=param)

    # ----- data ---------------------------------------------------------------------------------
    def make(self, record: Record) -> None:
        prefix = "evt" if record.collection == "events" else OBJECTS[record.collection][0]
        self.store.name(record, f"{prefix}_" + "".join(self.rng.choice(ALPHABET) for _ in range(24)))
        customers = self.store.rows("customers")
        if record.collection == "customers":
            record.attrs.update(email=f"customer{record.id}@example.com", name=f"Customer {record.id}")
        elif record.collection in ("charges", "payment_intents"):
            status = (
                "succeeded"
                if record.collection == "charges"
                else self.rng.choice(["succeeded", "processing"])
            )
            record.attrs.update(
                amount=self.rng.randint(100, 50_000),
                currency="usd",
                status=status,
                customer=self.rng.choice(customers).key if customers else None,
            )
            if record.collection == "payment_intents":  # what has been received so far
                record.attrs["amount_received"] = record.attrs["amount"] if status == "succeeded" else 0
        if record.collection != "events":
            record.attrs["metadata"] = {}

    def on_change(self, record: Record, change: str, previous: dict[str, Any]) -> None:
        if record.collection == "events":
            return
        kind = OBJECTS[record.collection][1]
        at = record.created if change == "created" else self.now()
        event = self.create("events", at, at, at)
        event.attrs.update(
            type=CREATED_EVENT[kind] if change == "created" else f"{kind}.{change}",
            object=copy.deepcopy(self.render(record)),
            previous_attributes=previous or None,
        )

    def render(self, record: Record) -> dict[str, Any]:
        if record.collection == "events":
            data = {"object": record.attrs.get("object", {})}
            if record.attrs.get("previous_attributes"):
                data["previous_attributes"] = record.attrs["previous_attributes"]
            return {
                "id": record.key,
                "object": "event",
                "api_version": self.config["api_version"],
                "created": int(record.created),
                "type": record.attrs.get("type", "unknown"),
                "livemode": False,
                "pending_webhooks": 0,
                "request": {"id": None, "idempotency_key": None},
                "data": data,
            }
        kind = OBJECTS[record.collection][1]
        if record.deleted:
            return {"id": record.key, "object": kind, "deleted": True}
        return {
            "id": record.key,
            "object": kind,
            "created": int(record.created),
            "livemode": False,
            **record.attrs,
        }

    # ----- handlers -----------------------------------------------------------------------------
    def lister(self, collection: str, allowed: set[str]) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            if refused := self.throttled(request):
                return refused
            query = request.query_params
            for name in query:
                if name not in allowed:
                    return self.invalid(f"Received unknown parameter: {name}", name, "parameter_unknown")
            try:
                limit = int(query.get("limit", "10"))
            except ValueError:
                limit = 0
            if not 1 <= limit <= 100:
                return self.invalid("limit must be an integer between 1 and 100.", "limit")
            if "starting_after" in query and "ending_before" in query:
                return self.invalid(
                    "starting_after and ending_before cannot be used together.", "ending_before"
                )
            rows = self.store.rows(collection)
            try:
                rows = self.filter_created(rows, request)
            except ValueError as exc:
                return self.invalid(str(exc), "created")
            if collection == "events":
                rows = self.filter_events(rows, request)
            return self.page(collection, rows, request, limit)

        return handler

    def filter_created(self, rows: list[Record], request: Request) -> list[Record]:
        tests = []
        for name, check in CREATED.items():
            if (value := request.query_params.get(name)) is not None:
                if not value.isdigit():
                    raise ValueError(f"{name} takes unix seconds.")
                tests.append((check, float(value)))
        return [r for r in rows if all(check(float(int(r.created)), bound) for check, bound in tests)]

    def filter_events(self, rows: list[Record], request: Request) -> list[Record]:
        since = self.now() - self.config["events_days"] * 86400
        wanted = request.query_params.getlist("types[]") or [request.query_params.get("type", "*")]
        return [
            r
            for r in rows
            if r.created >= since and any(fnmatch.fnmatchcase(r.attrs.get("type", ""), w) for w in wanted)
        ]

    def page(self, collection: str, rows: list[Record], request: Request, limit: int) -> Response:
        def sort_key(r: Record) -> tuple[int, str]:
            return (int(r.created), r.key)

        query = request.query_params
        cursor_id = query.get("starting_after") or query.get("ending_before")
        anchor = self.store.find(collection, cursor_id) if cursor_id else None
        if cursor_id and anchor is None:
            param = "starting_after" if "starting_after" in query else "ending_before"
            return self.invalid(f"No such object: '{cursor_id}'", param, "resource_missing")
        if "ending_before" in query and anchor is not None:
            newer, has_more = keyset(rows, sort_key, sort_key(anchor), limit)
            data = list(reversed(newer))
        else:
            data, has_more = keyset(
                rows, sort_key, sort_key(anchor) if anchor else None, limit, descending=True
            )
        body = {
            "object": "list",
            "url": request.url.path,
            "has_more": has_more,
            "data": [self.render(r) for r in data],
        }
        return self.answer(body)

    def getter(self, collection: str) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            if refused := self.throttled(request):
                return refused
            record = self.store.find(collection, request.path_params["id"])
            if record is None:
                kind = "event" if collection == "events" else OBJECTS[collection][1]
                return self.error(
                    404,
                    "invalid_request_error",
                    f"No such {kind}: '{request.path_params['id']}'",
                    code="resource_missing",
                )
            return self.answer(self.render(record))

        return handler

    def writer(self, collection: str) -> Callable[[Request], Awaitable[Response]]:
        allowed, required = CREATE_PARAMS[collection]

        async def handler(request: Request) -> Response:
            if refused := self.throttled(request):
                return refused
            attrs: dict[str, Any] = {}
            for name, value in await read_form(request):
                if name.startswith("metadata[") and name.endswith("]"):
                    attrs.setdefault("metadata", {})[name[9:-1]] = value
                elif name in allowed:
                    attrs[name] = value
                else:
                    return self.invalid(f"Received unknown parameter: {name}", name, "parameter_unknown")
            if "amount" in attrs:
                if not attrs["amount"].isdigit():
                    return self.invalid(
                        "amount must be a positive integer in the smallest currency unit.", "amount"
                    )
                attrs["amount"] = int(attrs["amount"])
            if "id" in request.path_params:
                return self.update(collection, request.path_params["id"], attrs)
            missing = sorted(required - set(attrs))
            if missing:
                return self.invalid(f"Missing required param: {missing[0]}.", missing[0], "parameter_missing")
            now = self.now()
            record = self.create(collection, now, now, self.tick())
            record.attrs.update(attrs)
            self.on_change(record, "created", {})
            return self.answer(self.render(record))

        return handler

    def update(self, collection: str, key: str, attrs: dict[str, Any]) -> Response:
        current = self.store.find(collection, key)
        if current is None:
            return self.error(
                404, "invalid_request_error", f"No such object: '{key}'", code="resource_missing"
            )
        if "metadata" in attrs:  # Stripe merges metadata keys
            attrs["metadata"] = {**current.attrs.get("metadata", {}), **attrs["metadata"]}
        (record,) = self.mutate({"collection": collection, "key": key, "set": attrs})
        return self.answer(self.render(record))

    # ----- idempotency --------------------------------------------------------------------------
    async def around(self, request: Request, call: Callable[[], Awaitable[Response]]) -> Response:
        key = request.headers.get("idempotency-key")
        if request.method != "POST" or key is None:
            return await call()
        if len(key) > 255:
            return self.invalid("Idempotency-Key must be at most 255 characters.", "idempotency_key")
        slot = (self.token(request) or "", key)
        fingerprint = (request.url.path, await request.body())
        saved = self.saved.get(slot)
        if saved is not None and self.now() - saved.at < self.config["idempotency_ttl_s"]:
            if saved.body is None:
                message = "A request with this idempotency key is still being processed; retry later."
                return self.error(409, "idempotency_error", message)
            if saved.fingerprint != fingerprint:
                message = "Keys for idempotent requests can only be used with the same parameters."
                return self.error(400, "idempotency_error", message)
            return Response(
                saved.body,
                saved.status,
                media_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
        self.saved[slot] = Saved(fingerprint, self.now())
        try:
            response = await call()
        except BaseException:
            del self.saved[slot]
            raise
        if response.status_code in (400, 401, 409, 429):  # never executed: nothing to replay
            del self.saved[slot]
        else:
            self.saved[slot] = Saved(fingerprint, self.now(), response.status_code, bytes(response.body))
        return response


FAKE = StripeFake
