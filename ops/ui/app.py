"""The web dashboard under /ui: server-rendered pages (Jinja2), no build step, no CDN.

Pages: overview (sources, queues and recent events, refreshed live), sources, queues, dead letters
(filter, inspect, edit, replay one or many), events (search), sync status and rule metrics. The
numbers refresh without a reload: `static/live.js` polls `/ui/live.json` for the page's live parts
(HTML fragments rendered by the same templates) every few seconds.

Login trades an operator API token (`hookyard tokens create`) for a signed session cookie
(`ops.ui.session`); writes need a write token and are audited as `ui:<token name>`. Every refusal
answers 403 JSON {"error", "detail"}, writes a `ui.rejected` line and counts in
`hookyard_ui_rejections_total{reason}`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Connection, Engine, or_, select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from events import dlq, metrics
from events.db import event_dict, events, utcnow
from events.queue import queue_depths
from events.settings import UiSettings
from events.sources import Source
from ops import status, tokens
from ops.tables import when
from ops.ui import extras
from ops.ui.letters import DeadLetterPages, notice_of, read_form
from ops.ui.session import CSRF_FIELD, LOGIN_COOKIE, SESSION_COOKIE, Session, Signer, same, stored_key

log = structlog.get_logger()

PREFIX = "/ui"
HERE = Path(__file__).parent
MAX_FORM_BYTES = 256 * 1024
SNAPSHOT_TTL_S = 1.5  # live polls from several tabs share one snapshot
LIVE_PARTS = ("sources", "queues", "events", "deadletters")
EVENT_COLUMNS = [c for c in events.c if c.name not in ("body", "headers", "payload", "lease_token")]
NAV = (
    ("", "Overview"),
    ("/sources", "Sources"),
    ("/queues", "Queues"),
    ("/dead-letters", "Dead letters"),
    ("/events", "Events"),
    ("/sync", "Sync"),
    ("/rules", "Rules"),
)
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return (
        f"{value:.0f} s"
        if value < 120
        else f"{value / 60:.0f} min"
        if value < 7200
        else f"{value / 3600:.1f} h"
    )


class Dashboard(DeadLetterPages):
    def __init__(
        self,
        engine: Engine,
        sources: Mapping[str, Source],
        settings: UiSettings,
        publish: dlq.Publish,
        depths: Callable[..., dict[str, int | None]] | None = queue_depths,
    ) -> None:
        self.engine, self.sources, self.settings, self.publish, self.depths = (
            engine,
            sources,
            settings,
            publish,
            depths,
        )
        configured = settings.secret_key
        self.signer = Signer(
            (lambda: configured.get_secret_value().encode()) if configured else (lambda: stored_key(engine))
        )
        self.jinja = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True)
        )
        self.jinja.filters.update(when=when, seconds=_seconds)
        self._lock = threading.Lock()
        self._snapshot: tuple[float, dict[str, Any]] | None = None

    # --- plumbing -------------------------------------------------------------------------------

    def app(self) -> Starlette:
        page, write = self._page, self._write
        routes = [
            Route("/", page(self.overview)),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", write(self.logout, writes=False), methods=["POST"]),
            Route("/live.json", page(self.live)),
            Route("/sources", page(self.sources_page)),
            Route("/queues", page(self.queues_page)),
            Route("/dead-letters", page(self.dead_letters)),
            Route("/dead-letters/replay", write(self.replay_many), methods=["POST"]),
            Route("/dead-letters/{event_id}", page(self.dead_letter)),
            Route("/dead-letters/{event_id}/edit", write(self.edit), methods=["POST"]),
            Route("/dead-letters/{event_id}/replay", write(self.replay_one), methods=["POST"]),
            Route("/events", page(self.events_page)),
            Route("/events/{event_id}", page(self.event_page)),
            Route("/sync", page(self.sync_page)),
            Route("/rules", page(self.rules_page)),
            Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        ]
        return Starlette(routes=routes)

    def render(self, name: str, session: Session | None, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        html = self.jinja.get_template(name).render(
            prefix=PREFIX, nav=NAV, session=session, csrf_field=CSRF_FIELD, **ctx
        )
        return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)

    def refuse(self, request: Request, reason: str, detail: str) -> Response:
        log.warning("ui.rejected", status=403, reason=reason, path=request.url.path, detail=detail)
        metrics.UI_REJECTIONS.labels(reason).inc()
        return JSONResponse({"error": reason, "detail": detail}, status_code=403, headers=SECURITY_HEADERS)

    async def _session(self, request: Request) -> Session | None:
        found = self.signer.session(request.cookies.get(SESSION_COOKIE))
        if found is None:
            return None

        def still_active() -> bool:
            with self.engine.connect() as conn:
                return tokens.active(conn, found.token_id) is not None

        return found if await run_in_threadpool(still_active) else None

    def _page(self, handler: Callable[[Request, Session], Awaitable[Response]]) -> Any:
        async def endpoint(request: Request) -> Response:
            session = await self._session(request)
            if session is None:
                target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
                return RedirectResponse(f"{PREFIX}/login?next={target}", status_code=303)
            return await handler(request, session)

        return endpoint

    def _write(
        self, handler: Callable[[Request, Session, dict[str, str]], Awaitable[Response]], writes: bool = True
    ) -> Any:
        async def endpoint(request: Request) -> Response:
            session = await self._session(request)
            if session is None:
                return self.refuse(request, "no_session", "log in first: this form needs a session")
            form = await read_form(request)
            if not same(session.csrf, form.get(CSRF_FIELD)):
                return self.refuse(request, "csrf", "the form's CSRF token is missing or wrong")
            if writes and not session.can_write():
                return self.refuse(request, "read_only", f"token {session.name!r} is read-only")
            return await handler(request, session, form)

        return endpoint

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            if self._snapshot is None or time.monotonic() - self._snapshot[0] > SNAPSHOT_TTL_S:
                data = status.snapshot(self.engine, self.sources, utcnow(), depths=self.depths)
                self._snapshot = (time.monotonic(), data)
            return self._snapshot[1]

    # --- login ----------------------------------------------------------------------------------

    async def login_form(self, request: Request, error: str | None = None, code: int = 200) -> Response:
        csrf, cookie = self.signer.login_token()
        response = self.render(
            "login.html", None, code, login_csrf=csrf, error=error, next=request.query_params.get("next", "")
        )
        self._cookie(response, LOGIN_COOKIE, cookie, 600)
        return response

    async def login(self, request: Request) -> Response:
        form = await read_form(request)
        if not same(self.signer.login_csrf(request.cookies.get(LOGIN_COOKIE)), form.get(CSRF_FIELD)):
            return self.refuse(request, "csrf", "the login form's CSRF token is missing or wrong")

        def check() -> tokens.Principal | None:
            with self.engine.connect() as conn:
                return tokens.authenticate(conn, form.get("token", "").strip())

        who = await run_in_threadpool(check)
        if who is None:
            metrics.UI_REJECTIONS.labels("bad_login").inc()
            log.warning("ui.rejected", status=401, reason="bad_login", path=request.url.path)
            return await self.login_form(request, "unknown or revoked token", 401)
        _, value = self.signer.new_session(who.id, who.name, who.scope, self.settings.session_hours * 3600)
        target = form.get("next", "")
        if not target.startswith(PREFIX + "/") or target.startswith("//"):
            target = PREFIX + "/"
        response = RedirectResponse(target, status_code=303)
        self._cookie(response, SESSION_COOKIE, value, int(self.settings.session_hours * 3600))
        response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
        log.info("ui.login", token=who.name, scope=who.scope)
        return response

    async def logout(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    def _cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=self.settings.secure_cookie,
        )

    # --- pages ----------------------------------------------------------------------------------

    async def overview(self, request: Request, session: Session) -> Response:
        data = await run_in_threadpool(self.snapshot)
        recent = await run_in_threadpool(self._events, {}, 15)
        return self.render("overview.html", session, data=data, events=recent, live="sources,queues,events")

    async def live(self, request: Request, session: Session) -> Response:
        wanted = [p for p in request.query_params.get("parts", "").split(",") if p]
        data = await run_in_threadpool(self.snapshot)
        parts: dict[str, str] = {}
        for part in wanted:
            if part == "events":
                recent = await run_in_threadpool(self._events, {}, 15)
                parts[part] = self.jinja.get_template("_events.html").render(prefix=PREFIX, events=recent)
            elif part.startswith("event:"):
                found = await run_in_threadpool(self._event, part.removeprefix("event:"))
                parts[part] = self.jinja.get_template("_event_state.html").render(event=found)
            elif part in LIVE_PARTS:
                parts[part] = self.jinja.get_template(f"_{part}.html").render(prefix=PREFIX, data=data)
        return JSONResponse({"at": data["at"], "parts": parts}, headers=SECURITY_HEADERS)

    async def sources_page(self, request: Request, session: Session) -> Response:
        data = await run_in_threadpool(self.snapshot)
        return self.render("sources.html", session, data=data, live="sources")

    async def queues_page(self, request: Request, session: Session) -> Response:
        data = await run_in_threadpool(self.snapshot)
        return self.render("queues.html", session, data=data, live="queues,deadletters")

    async def events_page(self, request: Request, session: Session) -> Response:
        query = {k: v for k, v in request.query_params.items() if v and k in ("source", "state", "type", "q")}
        found = await run_in_threadpool(self._events, query, 100)
        return self.render("events.html", session, events=found, query=query, states=STATES)

    async def event_page(self, request: Request, session: Session) -> Response:
        event_id = request.path_params["event_id"]
        found = await run_in_threadpool(self._event, event_id)
        if found is None:
            return self.render("missing.html", session, 404, what=f"event {event_id}")
        return self.render(
            "event.html", session, event=found, live=f"event:{event_id}", notice=notice_of(request)
        )

    async def sync_page(self, request: Request, session: Session) -> Response:
        rows = await run_in_threadpool(
            self._read, lambda conn: extras.sync_status(conn, self.sources, utcnow())
        )
        return self.render("table.html", session, title="Sync status", rows=rows)

    async def rules_page(self, request: Request, session: Session) -> Response:
        rows = await run_in_threadpool(self._read, extras.rule_metrics)
        return self.render("table.html", session, title="Rule metrics", rows=rows)

    # --- reads ----------------------------------------------------------------------------------

    def _events(self, query: Mapping[str, str], limit: int) -> list[dict[str, Any]]:
        stmt = select(*EVENT_COLUMNS).order_by(events.c.received_at.desc(), events.c.id.desc()).limit(limit)
        if query.get("source"):
            stmt = stmt.where(events.c.source == query["source"])
        if query.get("state"):
            stmt = stmt.where(events.c.state == query["state"])
        if query.get("type"):
            stmt = stmt.where(events.c.type.like(query["type"].replace("*", "%")))
        if query.get("q"):
            q = query["q"].strip()
            stmt = stmt.where(or_(events.c.id == q, events.c.dedupe_key == q, events.c.type.contains(q)))
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]

    def _event(self, event_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(events).where(events.c.id == event_id)).first()
        return None if row is None else event_dict(row)

    def _read(self, read: Callable[[Connection], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return read(conn)


STATES = ("accepted", "processing", "retry", "done", "dead", "purged")


def create_ui(
    engine: Engine,
    sources: Mapping[str, Source],
    settings: UiSettings,
    publish: dlq.Publish,
    depths: Callable[..., dict[str, int | None]] | None = queue_depths,
) -> Starlette:
    return Dashboard(engine, sources, settings, publish, depths).app()
