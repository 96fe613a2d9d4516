"""The dead-letter pages of the dashboard: filter, inspect, edit and replay (one, or many after a
confirmation, as in the CLI and the API). Writes are audited as `ui:<token name>`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from events import audit, dlq
from events.db import utcnow
from ops.ui.session import Session

PREFIX = "/ui"
MAX_FORM_BYTES = 256 * 1024


class DeadLetterPages:
    """Mixed into the dashboard, which provides the engine, `publish` and `render`."""

    engine: Engine
    publish: dlq.Publish

    def render(self, name: str, session: Session | None, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        raise NotImplementedError

    async def dead_letters(self, request: Request, session: Session) -> Response:
        query = {k: v for k, v in request.query_params.items() if v and k in FILTERS}
        try:
            filters = _filters(query)
        except ValueError as exc:
            return self.render(
                "dead_letters.html", session, 400, letters=[], total=0, query=query, error=str(exc)
            )

        def read() -> tuple[list[dict[str, Any]], int]:
            with self.engine.connect() as conn:
                return dlq.find(conn, filters, 100), dlq.count(conn, filters)

        letters, total = await run_in_threadpool(read)
        return self.render(
            "dead_letters.html", session, letters=letters, total=total, query=query, notice=notice_of(request)
        )

    async def dead_letter(self, request: Request, session: Session, error: str | None = None) -> Response:
        event_id = request.path_params["event_id"]

        def read() -> dict[str, Any] | None:
            with self.engine.connect() as conn:
                return dlq.show(conn, event_id)

        found = await run_in_threadpool(read)
        if found is None:
            return self.render("missing.html", session, 404, what=f"dead letter {event_id}")
        code = 422 if error else 200
        return self.render(
            "dead_letter.html", session, code, letter=found, error=error, notice=notice_of(request)
        )

    async def edit(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        event_id = request.path_params["event_id"]
        pairs = []
        for line in form.get("sets", "").splitlines():
            path, sep, raw = line.strip().partition("=")
            if line.strip() and (not sep or not path):
                return await self.dead_letter(request, session, f"{line.strip()!r}: expected PATH=VALUE")
            if sep:
                pairs.append((path.strip(), dlq.parse_value(raw.strip())))
        if not pairs:
            return await self.dead_letter(request, session, "nothing to change: write PATH=VALUE lines")

        def save() -> None:
            with self.engine.begin() as conn:
                dlq.edit(conn, event_id, pairs, utcnow())
                audit.record(conn, f"ui:{session.name}", "dlq.edit", event_id, {"set": dict(pairs)})

        try:
            await run_in_threadpool(save)
        except dlq.EditRejected as exc:
            return await self.dead_letter(request, session, str(exc))
        return RedirectResponse(
            f"{PREFIX}/dead-letters/{event_id}?notice=saved; it validates", status_code=303
        )

    async def replay_one(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        event_id = request.path_params["event_id"]

        def replay() -> int:
            with self.engine.connect() as conn:
                targets = dlq.plan(conn, None, [event_id])
            done, _ = dlq.replay(self.engine, targets, publish=self.publish, actor=f"ui:{session.name}")
            return done

        done = await run_in_threadpool(replay)
        notice = "replayed" if done else "not replayed: it is no longer dead"
        return RedirectResponse(f"{PREFIX}/events/{event_id}?notice={notice}", status_code=303)

    async def replay_many(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        query = {k: v for k, v in form.items() if v and k in FILTERS}
        try:
            filters = _filters({**query, "state": "dead"})
        except ValueError as exc:
            return self.render(
                "dead_letters.html", session, 400, letters=[], total=0, query=query, error=str(exc)
            )

        def planned() -> list[tuple[str, str]]:
            with self.engine.connect() as conn:
                return dlq.plan(conn, filters)

        targets = await run_in_threadpool(planned)
        if len(targets) > 1 and form.get("confirm") != "yes":  # as the CLI and the API: say how many first
            vendors: dict[str, int] = {}
            for _, vendor in targets:
                vendors[vendor] = vendors.get(vendor, 0) + 1
            return self.render("confirm.html", session, count=len(targets), vendors=vendors, query=query)
        done, skipped = await run_in_threadpool(
            lambda: dlq.replay(self.engine, targets, publish=self.publish, actor=f"ui:{session.name}")
        )
        notice = f"replayed {done}; {skipped} were no longer dead"
        return RedirectResponse(f"{PREFIX}/dead-letters?notice={quote(notice)}", status_code=303)


FILTERS = ("source", "vendor", "error_class", "text", "state")


def _filters(query: Mapping[str, str]) -> dlq.Filters:
    state = query.get("state", "dead")
    try:
        return dlq.Filters(
            source=query.get("source"),
            vendor=query.get("vendor"),
            error_class=query.get("error_class"),
            text=query.get("text"),
            state=None if state == "all" else state,
        )
    except Exception as exc:
        raise ValueError(f"filters: {exc}") from None


def notice_of(request: Request) -> str | None:
    return request.query_params.get("notice")


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form body (at most MAX_FORM_BYTES); anything else reads as an empty form."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
