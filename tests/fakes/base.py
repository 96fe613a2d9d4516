"""What every fake vendor API shares: configuration, clock, seeded data, the request pipeline
(stats → scheduled mutations → auth → injected faults → the vendor's handler) and the control
API under `/_fake/`.

A vendor module subclasses `Fake`: its `DEFAULTS` (every limit overridable), `routes()`, how it
reads a token, its own error shapes, how it fills a new record, and its rate limits through
`admit()`. See tests/fakes/README.md for the control API.
"""

from __future__ import annotations

import asyncio
import fnmatch
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.config import BASE_DEFAULTS, Clock, merge_config
from tests.fakes.faults import Fault, Pending
from tests.fakes.limits import Checks, Gate, Verdict
from tests.fakes.store import Record, Store, to_unix

Handler = Callable[[Request], Awaitable[Response]]

MUTATION_KEYS = {
    "collection",
    "id",
    "key",
    "add",
    "set",
    "touch",
    "delete",
    "updated_at",
    "created_at",
    "when",
}


@dataclass
class EndpointStats:
    requests: int = 0
    throttled: int = 0  # throttle signals sent (429, or Shopify's THROTTLED body)
    violations: int = 0  # requests that came while the client was told to wait
    faults: int = 0
    statuses: Counter[str] = field(default_factory=Counter)


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None, media_type: str | None = None
) -> Response:
    return JSONResponse(body, status_code=status, headers=headers, media_type=media_type)


async def read_form(request: Request) -> list[tuple[str, str]]:
    """The pairs of a form-encoded body, in order."""
    return parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)


def control_error(detail: str) -> Response:
    return json_response({"error": "bad_control_request", "detail": detail}, 400)


class Fake:
    """One fake vendor API: its data, limits, faults and statistics; `app()` is the ASGI app."""

    name: ClassVar[str] = ""
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    FIRST_IDS: ClassVar[dict[str, int]] = {}  # per collection, where the vendor's ids do not start at 1
    records_posts: ClassVar[bool] = False

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = merge_config({**BASE_DEFAULTS, **self.DEFAULTS}, config or {})
        self.reset()

    # ----- vendor hooks -------------------------------------------------------------------------
    def setup(self) -> None:
        """Build limiters and any vendor state (called on start and on reset, before seeding)."""

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def token(self, request: Request) -> str | None:
        """The credential the request carries, None when it carries none."""
        raise NotImplementedError

    def unauthorized(self, request: Request, reason: str) -> Response:
        """The vendor's answer to a missing, invalid or expired credential (`reason`)."""
        raise NotImplementedError

    def error_response(self, request: Request, status: int, code: str) -> Response:
        """The vendor's error answer for an injected fault."""
        raise NotImplementedError

    def make(self, record: Record) -> None:
        """Fill a new record's attributes (and key) with seeded values."""

    def on_change(self, record: Record, change: str, previous: dict[str, Any]) -> None:
        """React to a created, updated or deleted record (Stripe writes an event)."""

    def public_id(self, record: Record) -> Any:
        return record.key or record.id

    async def around(self, request: Request, call: Callable[[], Awaitable[Response]]) -> Response:
        """Wrap the faults and the handler (Stripe's idempotency keys live here)."""
        return await call()

    # ----- state --------------------------------------------------------------------------------
    def reset(self) -> None:
        self.clock = Clock(self.config["clock"])
        self.rng = random.Random(f"{self.name}:{self.config['seed']}")
        self.store = Store()
        self.gate = Gate()
        self.stats: dict[str, EndpointStats] = {}
        self.faults: list[Fault] = []
        self.pending: list[Pending] = []
        self.last_pages: dict[str, Response] = {}
        self.tokens = set(self.config["tokens"])
        self.posts: list[dict[str, Any]] = []
        self.last_tick = 0.0
        self.setup()
        self.seed()

    def seed(self) -> None:
        hi = int(self.clock.now()) - 120  # clear of Zendesk's one-minute exclusion
        lo = hi - int(self.config["span_days"] * 86400)
        for collection, count in self.config["counts"].items():
            for created in sorted(self.rng.randint(lo, hi) for _ in range(count)):
                updated = created if self.rng.random() < 0.5 else self.rng.randint(created, hi)
                self.on_change(self.create(collection, created, updated, updated), "created", {})

    def create(self, collection: str, created: float, updated: float, stream: float) -> Record:
        record = self.store.add(collection, created, updated, stream, self.FIRST_IDS.get(collection, 1))
        self.make(record)
        return record

    def now(self) -> float:
        return self.clock.now()

    def tick(self) -> float:
        """Now, but always later than the previous tick: a change always moves to the end of a feed."""
        self.last_tick = max(self.clock.now(), self.last_tick + 0.001)
        return self.last_tick

    def target(self, spec: dict[str, Any]) -> Record | None:
        """Check a mutation (ValueError, LookupError); the record it changes, None when it adds."""
        unknown = set(spec) - MUTATION_KEYS
        if unknown:
            raise ValueError(f"unknown mutation keys: {sorted(unknown)}")
        collection = str(spec.get("collection"))
        if collection not in self.store.tables and collection not in self.config["counts"]:
            raise ValueError(f"unknown collection {collection!r}")
        if not isinstance(spec.get("set", {}), dict):
            raise ValueError("set must be an object")
        for name in ("created_at", "updated_at"):
            if name in spec:
                to_unix(spec[name])
        if "add" in spec:
            int(spec["add"])
            return None
        found = (
            self.store.get(collection, int(spec["id"]))
            if "id" in spec
            else self.store.find(collection, str(spec.get("key", "")))
        )
        if found is None:
            raise LookupError(f"no {collection} with id {spec.get('id', spec.get('key'))!r}")
        return found

    def mutate(self, spec: dict[str, Any]) -> list[Record]:
        """Change one record or add new ones (see README.md, POST /_fake/mutate)."""
        found = self.target(spec)
        collection, changes = str(spec["collection"]), spec.get("set", {})
        now = self.clock.now()
        if found is None:
            created = to_unix(spec.get("created_at", now))
            added = []
            for _ in range(int(spec["add"])):
                record = self.create(
                    collection, created, to_unix(spec.get("updated_at", created)), self.tick()
                )
                record.attrs.update(changes)
                self.on_change(record, "created", {})
                added.append(record)
            return added
        previous = {name: found.attrs.get(name) for name in changes}
        found.attrs.update(changes)
        found.deleted = found.deleted or bool(spec.get("delete"))
        if spec.get("touch", True):
            found.updated = to_unix(spec.get("updated_at", now))
            found.stream = self.tick()
        self.on_change(found, "deleted" if spec.get("delete") else "updated", previous)
        return [found]

    def admit(self, request: Request, checks: Checks) -> Verdict:
        """Pass a request through the vendor's limiters, counting throttles and violations."""
        verdict = self.gate.admit(self.clock.now(), checks)
        stats = self.stats[request.state.label]
        stats.violations += verdict.violation
        stats.throttled += verdict.wait_s > 0
        return verdict

    # ----- the pipeline -------------------------------------------------------------------------
    def route(self, method: str, path: str, handler: Handler, *, auth: bool = True) -> Route:
        label = f"{method} {path}"

        async def endpoint(request: Request) -> Response:
            request.state.label = label
            stats = self.stats.setdefault(label, EndpointStats())
            stats.requests += 1
            self.run_pending(request)
            response = await self.serve(request, handler, auth)
            stats.statuses[str(response.status_code)] += 1
            return response

        return Route(path, endpoint, methods=[method])

    async def serve(self, request: Request, handler: Handler, auth: bool) -> Response:
        if auth:
            token = self.token(request)
            if not token:
                return self.unauthorized(request, "missing")
            if token not in self.tokens:
                return self.unauthorized(request, "invalid")
            if self.fault(request, "unauthorized"):
                return self.unauthorized(request, "expired")
        return await self.around(request, lambda: self.execute(request, handler))

    async def execute(self, request: Request, handler: Handler) -> Response:
        page_key = f"{request.method} {request.url.path}"
        if delay := self.fault(request, "delay"):
            await asyncio.sleep(delay.delay_s)
        if error := self.fault(request, "error"):
            return self.error_response(request, error.status, error.code)
        previous = self.last_pages.get(page_key)
        if previous is not None and self.fault(request, "repeat_page"):
            return Response(previous.body, previous.status_code, headers=dict(previous.headers))
        response = await handler(request)
        if 200 <= response.status_code < 300:
            self.last_pages[page_key] = response
        if self.fault(request, "malformed"):
            body = bytes(response.body)
            return Response(body[: len(body) // 2], response.status_code, media_type=response.media_type)
        return response

    def fault(self, request: Request, kind: str) -> Fault | None:
        for fault in self.faults:
            if fault.kind == kind and fault.hits(request):
                if fault.spent:
                    self.faults.remove(fault)
                self.stats[request.state.label].faults += 1
                return fault
        return None

    def run_pending(self, request: Request) -> None:
        for pending in list(self.pending):
            if not fnmatch.fnmatchcase(request.url.path, pending.path):
                continue
            if pending.seen < pending.after:
                pending.seen += 1
                continue
            self.pending.remove(pending)
            self.mutate(pending.spec)

    # ----- the control API ----------------------------------------------------------------------
    def app(self) -> Starlette:
        return Starlette(routes=[*self.control_routes(), *self.routes()])

    def control_routes(self) -> list[Route]:
        routes = [
            Route("/_fake/stats", self.control_stats, methods=["GET"]),
            Route("/_fake/faults", self.control_faults, methods=["POST", "DELETE"]),
            Route("/_fake/mutate", self.control_mutate, methods=["POST"]),
            Route("/_fake/reset", self.control_reset, methods=["POST"]),
            Route("/_fake/clock", self.control_clock, methods=["POST"]),
            Route("/_fake/tokens", self.control_tokens, methods=["POST"]),
            Route("/_fake/objects/{collection}", self.control_objects, methods=["GET"]),
        ]
        if self.records_posts:
            routes.append(Route("/_fake/posts", self.control_posts, methods=["GET"]))
        return routes

    async def control_stats(self, request: Request) -> Response:
        endpoints = {label: {**asdict(s), "statuses": dict(s.statuses)} for label, s in self.stats.items()}
        totals = {
            k: sum(e[k] for e in endpoints.values())
            for k in ("requests", "throttled", "violations", "faults")
        }
        return json_response({"vendor": self.name, **totals, "endpoints": endpoints})

    async def control_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.clear()
            return json_response({"faults": []})
        body = await request.json()
        specs = body.get("faults", [body]) if isinstance(body, dict) else body
        allowed = {f.name for f in fields(Fault)} - {"seen", "fired"}
        try:
            for spec in specs:
                if set(spec) - allowed:
                    raise ValueError(f"unknown fault keys: {sorted(set(spec) - allowed)}")
                self.faults.append(Fault(**spec))
        except (TypeError, ValueError) as exc:
            return control_error(str(exc))
        return json_response({"faults": [asdict(f) for f in self.faults]})

    async def control_mutate(self, request: Request) -> Response:
        body = await request.json()
        specs = body.get("mutations", [body]) if isinstance(body, dict) else body
        changed: list[Any] = []
        try:
            for spec in specs:
                when = spec.get("when")
                if when is not None:
                    rest = {k: v for k, v in spec.items() if k != "when"}
                    self.target(rest)
                    self.pending.append(Pending(rest, when.get("path", "*"), int(when.get("after", 0))))
                else:
                    changed.extend(self.public_id(r) for r in self.mutate(spec))
        except LookupError as exc:
            return json_response({"error": "not_found", "detail": str(exc)}, 404)
        except (TypeError, ValueError) as exc:
            return control_error(str(exc))
        return json_response({"changed": changed, "scheduled": len(self.pending)})

    async def control_reset(self, request: Request) -> Response:
        self.reset()
        return json_response({"reset": True})

    async def control_clock(self, request: Request) -> Response:
        self.clock.advance(float((await request.json()).get("advance_s", 0)))
        return json_response({"now": self.clock.now()})

    async def control_tokens(self, request: Request) -> Response:
        tokens = (await request.json()).get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            return control_error("tokens must be a list of strings")
        self.tokens = set(tokens)
        return json_response({"tokens": sorted(self.tokens)})

    async def control_objects(self, request: Request) -> Response:
        rows = self.store.rows(request.path_params["collection"], deleted=True)
        return json_response(
            [
                {"id": self.public_id(r), "created": r.created, "updated": r.updated, "stream": r.stream}
                | {"deleted": r.deleted, "attrs": r.attrs}
                for r in rows
            ]
        )

    async def control_posts(self, request: Request) -> Response:
        return json_response(self.posts)
