"""POST /webhooks/{source}: the hot path, as a plain ASGI handler.

find source → size and content checks → verify raw bytes → parse into envelopes →
group-committed insert (duplicates are successes) → publish new ids after commit → 2xx.
Every refusal answers JSON {"error", "detail"} with its status, a log line and a metric.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

import orjson
import structlog

from connectors import registry
from connectors.base import AnswerHandshake, ConnectorSpec, Parsed
from events import counts, metrics
from events.inbox import Arrival, Inbox, Stored
from events.migrate import missing_schema
from events.publisher import Publisher
from events.settings import Settings
from events.sources import Source
from schemas.errors import (
    HeadersTooLargeError,
    IngressError,
    MalformedError,
    MethodNotAllowedError,
    TooLargeError,
    UnknownSourceError,
    UnsupportedMediaError,
    VerificationError,
)

log = structlog.get_logger()

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
PREFIX = "/webhooks/"


def media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


class ServiceUnavailable(Exception):
    """The inbox could not commit: answer 503 with Retry-After, the vendor will retry."""

    reason = "cannot_persist"
    detail = "events cannot be stored right now; retry later"


class NotMigrated(ServiceUnavailable):
    """The database lacks Hookyard's tables or columns: someone has to run `hookyard migrate`."""

    reason = "not_migrated"
    detail = "events cannot be stored until the database schema is installed; retry later"


class Overloaded(IngressError):
    """Too many requests wait for the inbox: shed this one, the vendor will retry."""

    status = 429
    code = "overloaded"


async def respond(send: Send, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    content_type = b"text/plain; charset=utf-8" if isinstance(body, bytes) else b"application/json"
    raw = [(b"content-type", content_type), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


# Headers that proxies and load balancers legitimately repeat; any other header sent twice is refused,
# so a second signature (or delivery id) header can never change which one is checked.
REPEATABLE = frozenset(
    {
        "accept",
        "accept-encoding",
        "cache-control",
        "forwarded",
        "via",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
    }
)


def read_headers(raw: Sequence[tuple[bytes, bytes]], limit: int) -> dict[str, str]:
    """The request headers, names lower-cased: at most `limit` bytes in all (431), none repeated (400)."""
    size = sum(len(name) + len(value) for name, value in raw)
    if size > limit:
        raise HeadersTooLargeError(f"{size} bytes of headers; at most {limit}")
    headers: dict[str, str] = {}
    for name_raw, value_raw in raw:
        name = name_raw.decode("latin-1").lower()
        value = value_raw.decode("latin-1")
        if name in headers and name not in REPEATABLE:
            raise MalformedError(f"header {name} is sent more than once", code="duplicate_header")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise MalformedError("client disconnected before the body was complete", code="disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLargeError(f"body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class Ingress:
    def __init__(
        self,
        settings: Settings,
        sources: Mapping[str, Source],
        inbox: Inbox,
        publisher: Publisher,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sources = sources
        self.inbox = inbox
        self.publisher = publisher
        self.clock = clock
        self.connectors: dict[str, ConnectorSpec] = {
            s.connector: registry.get(s.connector) for s in sources.values()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path"][len(PREFIX) :].strip("/")
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id, source=name)
        reason = "accepted"
        try:
            source = self.sources.get(name)
            if source is None:
                raise UnknownSourceError(f"no source named {name!r} is configured")
            status, body, extra = await self._handle(scope, receive, source)
        except IngressError as exc:
            status, reason = exc.status, exc.code
            if scope["method"] == "GET" and isinstance(exc, VerificationError):
                status = 403  # a refused handshake: the vendor asked, we decline
            body, extra = {"error": exc.code, "detail": exc.detail}, exc.response_headers()
            if isinstance(exc, Overloaded):
                extra["retry-after"] = str(self.settings.ingress.retry_after_s)
            log.warning("ingress.rejected", status=status, reason=exc.code, detail=exc.detail)
            if isinstance(exc, VerificationError):
                metrics.VERIFICATION_FAILURES.labels(name, exc.code).inc()
                counts.REFUSALS.add(name)  # the source's health (a wrong secret turns it red)
        except ServiceUnavailable as exc:
            status, reason = 503, exc.reason
            body = {"error": reason, "detail": exc.detail}
            extra = {"retry-after": str(self.settings.ingress.retry_after_s)}
            log.error("ingress.rejected", status=status, reason=reason, detail=str(exc))
        except Exception:
            status, reason = 500, "internal"
            body, extra = {"error": reason, "detail": "unexpected error; nothing was stored"}, {}
            log.exception("ingress.failed")
        extra["x-request-id"] = request_id
        await respond(send, status, body, extra)
        known = name if name in self.sources else metrics.UNKNOWN_SOURCE
        metrics.REQUESTS.labels(known, str(status), reason).inc()
        metrics.LATENCY.labels(known).observe(time.perf_counter() - started)
        structlog.contextvars.unbind_contextvars("request_id", "source")

    async def _handle(
        self, scope: Scope, receive: Receive, source: Source
    ) -> tuple[int, Any, dict[str, str]]:
        connector = self.connectors[source.connector]
        allow = ("GET", "POST") if connector.handshake is not None else ("POST",)
        if scope["method"] not in allow:
            raise MethodNotAllowedError(
                f"method {scope['method']} is not accepted here; use {' or '.join(allow)}", allow=allow
            )
        if scope["method"] == "GET" and connector.handshake is not None:
            return self._handshake(scope, connector.handshake, source)
        if self.inbox.pending >= self.settings.ingress.max_pending:
            raise Overloaded(f"{self.inbox.pending} requests are waiting to be stored; retry later")
        headers = read_headers(scope["headers"], self.settings.ingress.max_header_bytes)
        self._check_content(headers, connector)
        body = await read_body(receive, self.settings.ingress.max_body_bytes)
        now = self.clock()
        connector.verify(body, headers, source.secret_values(), now, source.options)
        parsed = connector.parse(body, headers, source.options)
        stored = await self._store(source, body, headers, parsed, now)
        for event_id in stored.new:
            self.publisher.submit(event_id, source.connector)
        answer: dict[str, Any] = {
            "accepted": len(stored.new),
            "duplicates": stored.duplicates,
            "ids": stored.new,
        }
        if parsed.reply is not None:
            return 200, parsed.reply if not parsed.deliveries else {**parsed.reply, **answer}, {}
        log.debug("ingress.accepted", accepted=len(stored.new), duplicates=stored.duplicates)
        return 200, answer, {}

    def _check_content(self, headers: Mapping[str, str], connector: ConnectorSpec) -> None:
        length = headers.get("content-length")
        limit = self.settings.ingress.max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            raise TooLargeError(f"body of {length} bytes exceeds {limit} bytes")
        allowed = connector.content_types
        if media_type(headers) not in allowed:
            raise UnsupportedMediaError(
                f"content type {media_type(headers) or 'missing'!r}; expected {' or '.join(allowed)}"
            )

    def _handshake(
        self, scope: Scope, handshake: AnswerHandshake, source: Source
    ) -> tuple[int, Any, dict[str, str]]:
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        return 200, handshake(query, source.options).encode(), {}

    async def _store(
        self, source: Source, body: bytes, headers: dict[str, str], parsed: Parsed, now: float
    ) -> Stored:
        arrival = Arrival(
            source.name, source.connector, body, headers, parsed.deliveries, now, source.replay_guard
        )
        try:
            stored = await self.inbox.add(arrival)
        except IngressError:
            raise  # this delivery's own data cannot be stored: 400, and nothing is lost by saying so
        except Exception as exc:
            if missing_schema(exc):
                raise NotMigrated("the database has no Hookyard schema: run `hookyard migrate`") from exc
            raise ServiceUnavailable(repr(exc)) from exc
        metrics.EVENTS.labels(source.name, "new").inc(len(stored.new))
        metrics.EVENTS.labels(source.name, "duplicate").inc(stored.duplicates)
        return stored
