"""The operator HTTP API under /v1: bearer tokens, OpenAPI at /v1/openapi.json, audit-logged writes."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Engine, select

from events import audit, dlq, flags, runtime_flags, syncs
from events.db import event_dict, events, utcnow
from events.queue import publish
from events.sources import Source
from ops import tokens
from ops.api_errors import MAX_OFFSET, ApiError, document_errors, install_error_handlers, refuse_nul

bearer = HTTPBearer(auto_error=False)


CONFIRM = "required (true) when the action would touch more than one dead letter; dry_run shows how many"


class ReplayRequest(BaseModel):
    model_config = ConfigDict(  # the document says what the handler checks: ids or where
        json_schema_extra={
            "anyOf": [
                {"required": ["ids"], "properties": {"ids": {"minItems": 1}}},
                {"required": ["where"], "properties": {"where": {"type": "object"}}},
            ]
        }
    )
    ids: list[dlq.Text] = Field(default_factory=list, max_length=10_000)
    where: dlq.Filters | None = Field(default=None, description="state is always dead here")
    dry_run: bool = False
    confirm: bool = Field(default=False, description=CONFIRM)
    rate_per_s: float | None = Field(default=None, gt=0)


class EditRequest(BaseModel):
    set: dict[dlq.Text, Any] = Field(
        min_length=1,
        description="PATH → new value; PATH uses dots",
        json_schema_extra={"propertyNames": {"pattern": dlq.NO_NUL}},  # pydantic says patternProperties
    )


class PurgeRequest(BaseModel):
    model_config = ConfigDict(  # the document says what the handler checks: where and/or older_than
        json_schema_extra={
            "anyOf": [
                {"required": ["where"], "properties": {"where": {"type": "object"}}},
                {"required": ["older_than"], "properties": {"older_than": {"type": "string"}}},
            ]
        }
    )
    where: dlq.Filters | None = Field(
        default=None, description="a selector: where and/or older_than is required"
    )
    older_than: Annotated[str, StringConstraints(pattern=dlq.DURATION)] | None = Field(
        default=None, description="only those dead longer than this: a number and s, m, h, d or w (30d)"
    )
    dry_run: bool = False
    confirm: bool = Field(default=False, description=CONFIRM)


def require_confirmation(planned: int, confirmed: bool, action: str) -> None:
    """The API's twin of the CLI's prompt: a bulk action states how many it would touch and waits
    for `confirm: true`, so no request replays or deletes everything by omission."""
    if planned > 1 and not confirmed:
        raise ApiError(
            400,
            "confirmation_required",
            f"{planned} dead letters would be {action}; send confirm: true to proceed",
        )


class FlagRequest(BaseModel):
    kind: Literal["rule", "source"]
    name: str = Field(min_length=1, max_length=100)
    enabled: bool | None = Field(description="true: on, false: off, null: clear (the rule file decides)")


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def principal(request: Request, credentials: Credentials) -> tokens.Principal:
    if credentials is None:
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>")
    with request.app.state.engine.connect() as conn:
        found = tokens.authenticate(conn, credentials.credentials)
    if found is None:
        raise ApiError(401, "unauthorized", "unknown or revoked token")
    return found


def writer(who: Annotated[tokens.Principal, Depends(principal)]) -> tokens.Principal:
    if not who.can_write():
        raise ApiError(403, "forbidden", f"token {who.name!r} is read-only")
    return who


Reader = Annotated[tokens.Principal, Depends(principal)]
Writer = Annotated[tokens.Principal, Depends(writer)]


def create_api(
    engine: Engine,
    sources: Mapping[str, Source],
    publish: dlq.Publish = publish,
    rule_names: Callable[[], Collection[str]] = lambda: (),
) -> FastAPI:
    # mounted at /v1: the mount supplies the prefix, so the document is /v1/openapi.json. Swagger UI
    # at /v1/docs is served from the fastapi-offline package (/v1/docs/static): no CDN, works offline.
    api: FastAPI = FastAPIOffline(
        title="Hookyard operator API",
        version="1",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        static_url="/docs/static",
        redirect_slashes=False,  # /v1/dead-letters/ is a 404, not a redirect
        dependencies=[Depends(refuse_nul)],
    )
    install_error_handlers(api)
    document_errors(api, reader=principal, writer=writer)

    api.state.engine = engine

    @api.get("/dead-letters")
    def list_dead_letters(
        who: Reader,
        source: str | None = None,
        vendor: str | None = None,
        task: str | None = None,
        error_class: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        text: str | None = None,
        state: Annotated[
            Literal["dead", "replayed", "all"], Query(description="dead letters in this state, or all")
        ] = "dead",
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> dict[str, Any]:
        filters = dlq.Filters(
            source=source,
            vendor=vendor,
            task=task,
            error_class=error_class,
            since=since,
            until=until,
            text=text,
            state=None if state == "all" else state,
        )
        with engine.connect() as conn:
            return {"total": dlq.count(conn, filters), "items": dlq.find(conn, filters, limit, offset)}

    @api.get("/dead-letters/{event_id}")
    def show_dead_letter(event_id: str, who: Reader) -> dict[str, Any]:
        with engine.connect() as conn:
            found = dlq.show(conn, event_id)
        if found is None:
            raise ApiError(404, "not_found", f"no dead letter {event_id}")
        return found

    @api.patch(
        "/dead-letters/{event_id}",
        responses={
            409: {"description": "It was replayed already: only a dead letter waiting can be edited."},
            422: {"description": "The request, or the edited payload, does not validate (see detail)."},
        },
    )
    def edit_dead_letter(event_id: str, body: EditRequest, who: Writer) -> dict[str, Any]:
        try:
            with engine.begin() as conn:
                payload = dlq.edit(conn, event_id, body.set.items(), utcnow())
                audit.record(conn, f"api:{who.name}", "dlq.edit", event_id, {"set": body.set})
        except dlq.NoDeadLetter as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        except dlq.NotDead as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        except dlq.EditRejected as exc:
            raise ApiError(422, "invalid_payload", str(exc)) from None
        return {"event_id": event_id, "payload": payload}

    @api.post("/dead-letters/replay")
    def replay_dead_letters(body: ReplayRequest, who: Writer) -> dict[str, Any]:
        if not body.ids and body.where is None:
            raise ApiError(400, "nothing_selected", "give ids or where")
        with engine.connect() as conn:
            targets = dlq.plan(conn, body.where, body.ids)
        if body.dry_run:
            return {"planned": len(targets), "event_ids": [e for e, _ in targets[:1000]]}
        require_confirmation(len(targets), body.confirm, "replayed")
        replayed, skipped = dlq.replay(
            engine, targets, publish=publish, actor=f"api:{who.name}", rate_per_s=body.rate_per_s
        )
        return {"planned": len(targets), "replayed": replayed, "skipped": skipped}

    @api.post("/dead-letters/purge")
    def purge_dead_letters(body: PurgeRequest, who: Writer) -> dict[str, int]:
        if body.where is None and body.older_than is None:
            raise ApiError(
                400, "nothing_selected", "give where (filters; {} selects every one) and/or older_than"
            )
        age = dlq.parse_duration(body.older_than) if body.older_than else None  # its pattern held
        where = body.where or dlq.Filters(state=None)
        now = utcnow()
        with engine.connect() as conn:
            planned = dlq.purge_count(conn, where, age, now=now)
        if body.dry_run:
            return {"planned": planned}
        require_confirmation(planned, body.confirm, "purged")
        with engine.begin() as conn:
            purged = dlq.purge(conn, where, age, now=now)
            audit.record(
                conn, f"api:{who.name}", "dlq.purge", None, {"purged": purged, "older_than": body.older_than}
            )
        return {"purged": purged}

    @api.get("/events/{event_id}")
    def show_event(event_id: str, who: Reader) -> dict[str, Any]:
        with engine.connect() as conn:
            row = conn.execute(select(events).where(events.c.id == event_id)).first()
        if row is None:
            raise ApiError(404, "not_found", f"no event {event_id}")
        return event_dict(row)

    @api.get("/sources")
    def list_sources(who: Reader) -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return flags.statuses(conn, sources)

    @api.delete("/sources/{name}/flag")
    def clear_source_flag(name: str, who: Writer) -> dict[str, Any]:
        with engine.begin() as conn:
            if not flags.clear(conn, name):
                raise ApiError(404, "not_found", f"source {name!r} is not flagged")
            audit.record(conn, f"api:{who.name}", "sources.clear_flag", name)
        return {"name": name, "needs_reauth": False}

    @api.get("/syncs")
    def list_syncs(who: Reader) -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return syncs.status(conn, sources, utcnow())

    @api.get("/syncs/{source}/{stream}")
    def show_sync(
        source: str, stream: str, who: Reader, runs: Annotated[int, Query(ge=1, le=1000)] = 20
    ) -> dict[str, Any]:
        with engine.connect() as conn:
            found = [
                s
                for s in syncs.status(conn, sources, utcnow())
                if (s["source"], s["stream"]) == (source, stream)
            ]
            if not found:
                raise ApiError(404, "not_found", f"no sync {source}/{stream}")
            return {**found[0], "runs": syncs.history(conn, source, stream, runs)}

    @api.get("/quarantine")
    def list_quarantine(
        who: Reader,
        source: str | None = None,
        stream: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return syncs.quarantined(conn, source, stream, limit, offset)

    @api.get("/flags")
    def list_flags(who: Reader) -> dict[str, Any]:
        with engine.connect() as conn:
            return {"flags": runtime_flags.listing(conn)}

    @api.put("/flags", responses={404: {"description": "No rule or source of that name."}})
    def set_flag(body: FlagRequest, who: Writer) -> dict[str, Any]:
        known = rule_names() if body.kind == "rule" else sources.keys()
        if body.name not in known:
            raise ApiError(404, f"unknown_{body.kind}", f"no {body.kind} {body.name!r}")
        with engine.begin() as conn:
            runtime_flags.put(conn, body.kind, body.name, body.enabled, f"api:{who.name}")
        return body.model_dump()

    return api
