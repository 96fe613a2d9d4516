"""`/v1/connections`: the sources' OAuth connections, as `hookyard connections` shows and changes them.

`GET /v1/connections` (read token) lists them: status, scope, expiry, who connected them — never a
token. `POST /v1/connections/{source}/connect` (write) starts an install and returns the URL to open
in a browser; `DELETE /v1/connections/{source}` (write) revokes one. Both are audited.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from fastapi import APIRouter
from sqlalchemy import Engine

from connectors.http import process_client
from events import connections, install
from events.connections import NotConnected, box_for
from events.db import utcnow
from events.install import InstallRefused
from events.settings import Settings
from events.sources import Source
from ops.api import Reader, Writer
from ops.api_errors import ApiError


def connections_router(
    engine: Engine, sources: Mapping[str, Source], settings: Settings, http: httpx.Client | None = None
) -> APIRouter:
    """The routes, to include in the /v1 app (`http`: the client for providers; tests pass one)."""
    router = APIRouter(prefix="/connections", tags=["connections"])

    def configured(name: str) -> Source:
        source = sources.get(name)
        if source is None:
            raise ApiError(404, "not_found", f"no source named {name!r}")
        if source.oauth is None:
            raise ApiError(404, "not_configured", f"source {name!r} has no [sources.{name}.oauth]")
        return source

    @router.get("")
    def list_connections(who: Reader) -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return connections.listing(conn, sources)

    @router.post("/{name}/connect")
    def connect(name: str, who: Writer) -> dict[str, Any]:
        source = configured(name)
        try:
            started = install.start(
                engine, source, box_for(settings), settings.oauth, f"api:{who.name}", utcnow()
            )
        except InstallRefused as exc:
            raise ApiError(exc.status, exc.code, exc.detail) from None
        return {"source": name, "url": started.url, "expires_at": started.expires_at.isoformat()}

    @router.delete("/{name}")
    def revoke(name: str, who: Writer) -> dict[str, Any]:
        source = configured(name)
        try:
            return connections.revoke(
                engine, source, box_for(settings), f"api:{who.name}", utcnow(), http=http or process_client()
            )
        except NotConnected as exc:
            raise ApiError(404, "not_connected", str(exc)) from None

    return router
