"""The ASGI application: the webhook hot path plus liveness, readiness and metrics.

`/webhooks/…` goes straight to the plain-ASGI `Ingress`; everything else to a Starlette app:
`/healthz` (the process answers; touches nothing), `/readyz` (database, schema and broker, see
`events.readiness`), `/metrics` (every Hookyard process on this machine plus the inbox and monitor
gauges), the operator API under `/v1`, the dashboard under `/ui` (`ops.ui`) and the OAuth install
routes under `/oauth` (`ops.oauth_web`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from events import metrics
from events.counts import Flusher
from events.db import make_async_engine, make_engine
from events.exposition import InboxCollector, MonitorCollector, machine_collector
from events.inbox import Inbox
from events.ingress import PREFIX, Ingress, Receive, Scope, Send, respond
from events.log import configure_logging
from events.multiprocess import mark_dead
from events.publisher import Publisher
from events.queue import connect_publisher, probe_broker, publish
from events.readiness import Readiness, is_ready
from events.settings import Settings, get_settings
from events.sources import load_sources
from ops.api import create_api
from ops.api_connections import connections_router
from ops.api_errors import http_error
from ops.oauth_web import create_oauth_app
from ops.ui.app import create_ui
from rules.loader import watch_configured

log = structlog.get_logger()

REST_PATHS = ("/healthz", "/readyz", "/metrics", "/v1", "/ui", "/oauth")

PARSE_ERROR = orjson.dumps(
    {
        "error": "malformed_request",
        "detail": "the HTTP request could not be parsed (percent-encode non-ASCII bytes in the path)",
    }
)


class JsonErrorsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, except that a request its parser refuses (raw UTF-8 in the path, a
    broken request line) is answered like every other refusal: JSON {"error", "detail"}, a log line,
    a metric — not uvicorn's plain-text 400."""

    def send_400_response(self, msg: str) -> None:
        head = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
        head += b"content-length: %d\r\nconnection: close\r\n\r\n" % len(PARSE_ERROR)
        self.transport.write(head + PARSE_ERROR)
        self.transport.close()
        log.warning("ingress.rejected", status=400, reason="malformed_request", detail=msg)
        metrics.REQUESTS.labels("_unknown", "400", "malformed_request").inc()


class HookyardApp:
    def __init__(self, settings: Settings, probe: Callable[[float], None] = probe_broker) -> None:
        self.settings = settings
        self.sources = load_sources(settings.config, settings.secrets_file)
        self.engine = make_async_engine(
            settings.database_url.get_secret_value(), pool_size=settings.ingress.writers + 2
        )
        self.inbox = Inbox(
            self.engine,
            batch_max=settings.ingress.batch_max,
            writers=settings.ingress.writers,
            relay_grace_s=settings.relay.grace_s,
        )
        self.publisher = Publisher(linger_s=settings.ingress.publish_linger_s)
        self.ingress = Ingress(settings, self.sources, self.inbox, self.publisher)
        timeout_s = settings.metrics.check_timeout_s
        self.sync_engine = make_engine(settings.database_url.get_secret_value(), connect_timeout_s=timeout_s)
        self.readiness = Readiness(self.sync_engine, lambda: probe(timeout_s), timeout_s)
        rules = watch_configured(settings.config, settings.secrets_file, self.sources.keys())
        self.rule_names = lambda: [] if rules is None else [r.name for r in rules.current().rules]
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(machine_collector(settings.metrics.dir))
        self.registry.register(
            InboxCollector(
                self.sync_engine, self.sources, cache_s=settings.metrics.inbox_cache_s, timeout_s=timeout_s
            )
        )
        self.registry.register(
            MonitorCollector(
                self.sync_engine, self.sources, cache_s=settings.metrics.inbox_cache_s, timeout_s=timeout_s
            )
        )
        self.flusher = Flusher(self.sync_engine, settings.monitor.counts_flush_s)
        api = create_api(self.sync_engine, self.sources, rule_names=self.rule_names)
        api.include_router(connections_router(self.sync_engine, self.sources, settings))
        self.rest = Starlette(
            routes=[
                Route("/healthz", self.health),
                Route("/readyz", self.ready),
                Route("/metrics", self.metrics),
                Mount("/v1", app=api),
                Mount("/ui", app=create_ui(self.sync_engine, self.sources, settings.ui, publish)),
                Mount("/oauth", app=create_oauth_app(self.sync_engine, self.sources, settings)),
            ],
            exception_handlers={HTTPException: http_error},  # a path no route takes: JSON too
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http" and scope["path"].startswith(PREFIX):
            await self.ingress(scope, receive, send)
        elif scope["type"] == "http" and not scope["path"].startswith(REST_PATHS):
            await respond(send, 404, {"error": "not_found", "detail": f"no route {scope['path']}"})
        else:
            await self.rest(scope, receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.inbox.start()
                await self.publisher.start(warm=connect_publisher)
                self.flusher.start()  # refused deliveries per source, for the monitor's health score
                checks = await self.readiness.check()  # logs what is wrong, e.g. "run hookyard migrate"
                log.info("ingress.started", sources=sorted(self.sources), ready=is_ready(checks), **checks)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.publisher.stop()
                await self.inbox.stop()
                await asyncio.to_thread(self.flusher.stop)
                await self.engine.dispose()
                self.readiness.close()
                self.sync_engine.dispose()
                mark_dead(os.getpid())
                log.info("ingress.stopped")  # uvicorn answered every request it had taken first
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def health(self, request: Request) -> Response:
        """Liveness: the process answers. Touches nothing, so a database outage never restarts it."""
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        checks = await self.readiness.check()
        ready = is_ready(checks)
        body = {"status": "ready" if ready else "not_ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(self, request: Request) -> Response:
        body = await asyncio.to_thread(generate_latest, self.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def create_app() -> Any:
    """Factory for uvicorn (`--factory ops.web:create_app`)."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    return HookyardApp(settings)
