"""The browser side of connecting a source: `/oauth/{source}/start` and `/oauth/{source}/callback`.

`GET /oauth/{source}/start` needs an operator with a write token (`Authorization: Bearer …`) and
answers 302 to the vendor's authorize URL (state and PKCE challenge included). The vendor sends the
browser back to `GET /oauth/{source}/callback?code=…&state=…`: no operator token there, the signed
single-use state is what authenticates the request. It answers 200 with the connection's status, or
a refusal: JSON `{"error", "detail"}`, an `oauth.rejected` log line and
`hookyard_oauth_installs_total{source, step, outcome}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx
import structlog
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from connectors.http import process_client
from events import install, metrics
from events.connections import box_for
from events.db import utcnow
from events.install import InstallRefused
from events.metrics import UNKNOWN_SOURCE
from events.settings import Settings
from events.sources import Source
from ops import tokens

log = structlog.get_logger()


def operator(engine: Engine, request: Request) -> tokens.Principal:
    """The operator behind a bearer token, with the write scope; InstallRefused otherwise."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential:
        raise InstallRefused(401, "unauthorized", "send Authorization: Bearer <token> (a write token)")
    with engine.connect() as conn:
        who = tokens.authenticate(conn, credential.strip())
    if who is None:
        raise InstallRefused(401, "unauthorized", "unknown or revoked token")
    if not who.can_write():
        raise InstallRefused(403, "forbidden", f"token {who.name!r} is read-only")
    return who


def create_oauth_app(
    engine: Engine, sources: Mapping[str, Source], settings: Settings, http: httpx.Client | None = None
) -> Starlette:
    """The two routes, to mount at /oauth (`http`: the client for token endpoints; tests pass one)."""

    def configured(name: str) -> Source:
        source = sources.get(name)
        if source is None:
            raise InstallRefused(404, "unknown_source", f"no source named {name!r}")
        if source.oauth is None:
            raise InstallRefused(404, "not_configured", f"source {name!r} has no [sources.{name}.oauth]")
        return source

    def start(request: Request) -> Response:
        who = operator(engine, request)
        source = configured(request.path_params["source"])
        started = install.start(
            engine, source, box_for(settings), settings.oauth, f"web:{who.name}", utcnow()
        )
        return RedirectResponse(started.url, status_code=302)

    def callback(request: Request) -> Response:
        source = configured(request.path_params["source"])
        answer = install.finish(
            engine,
            source,
            box_for(settings),
            dict(request.query_params),
            utcnow(),
            http=http or process_client(),
            timeout_s=settings.oauth.http_timeout_s,
        )
        return JSONResponse(answer)

    def step(name: str, handler: Callable[[Request], Response]) -> Route:
        async def endpoint(request: Request) -> Response:
            source = request.path_params["source"]
            label = source if source in sources else UNKNOWN_SOURCE
            try:
                response = await run_in_threadpool(handler, request)
            except InstallRefused as exc:
                metrics.OAUTH_INSTALLS.labels(label, name, exc.code).inc()
                log.warning("oauth.rejected", source=label, step=name, reason=exc.code, detail=exc.detail)
                headers = {"www-authenticate": "Bearer"} if exc.status == 401 else None
                return JSONResponse({"error": exc.code, "detail": exc.detail}, exc.status, headers)
            metrics.OAUTH_INSTALLS.labels(label, name, "ok").inc()
            return response

        return Route(f"/{{source}}/{name}", endpoint, methods=["GET"])

    return Starlette(routes=[step("start", start), step("callback", callback)])
