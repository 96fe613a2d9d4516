"""The operator API's one error shape, `{"error": code, "detail": text}`, for every refusal — ours,
FastAPI's request validation (422) and Starlette's routing (404, 405 with `Allow`) — each a log
line (`api.rejected`) and a metric, and documented in the OpenAPI document on every operation that
can answer it (`document_errors`).

NUL characters in the path or the query are refused at the door (400 `invalid_characters`), and the
document says so (a pattern on every string parameter); request bodies say it in their models
(`events.dlq.Text`, 422). PostgreSQL's text cannot hold a NUL: it could only turn into a 500 further in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from events import metrics
from events.dlq import NO_NUL

log = structlog.get_logger()

MAX_OFFSET = 2**31 - 1  # a page offset past this is refused (422), never handed to the database
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_request",
}
ERRORS_DESCRIPTION = """Every error answers JSON `{"error": code, "detail": text}` (schema `ErrorBody`).
A path that names no operation answers 404 `not_found`; a method the path does not take answers 405
`method_not_allowed` with `Allow`. A NUL character in the path or the query answers 400
`invalid_characters` (string parameters carry the pattern that says so)."""


class ApiError(HTTPException):
    """A refusal with its machine-readable code: `ApiError(404, "not_found", "no event x")`."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(status_code=status, detail=detail)
        self.code = code


class ErrorBody(BaseModel):
    """What every error answer carries."""

    error: str = Field(description="A machine-readable code: unauthorized, not_found, invalid_request, …")
    detail: str = Field(description="What is wrong, for a person.")


def _answer(
    request: Request, status: int, code: str, detail: str, headers: dict[str, str] | None
) -> JSONResponse:
    route = request.scope.get("route")
    log.info(
        "api.rejected",
        status=status,
        error=code,
        method=request.method,
        route=getattr(route, "path_format", None),  # the template, never the raw path
    )
    metrics.API_REJECTIONS.labels(str(status), code).inc()
    return JSONResponse(
        ErrorBody(error=code, detail=detail).model_dump(), status_code=status, headers=headers
    )


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "request"


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Ours (`ApiError`) and Starlette's (routing: 404, 405 with Allow) in the one shape. Also the
    handler of the web app around /v1 (`ops.web`), whose routes a path may miss altogether."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        headers["www-authenticate"] = "Bearer"
    if isinstance(exc, ApiError):
        return _answer(request, exc.status_code, exc.code, str(exc.detail), headers or None)
    detail = {  # Starlette's routing: said in our words
        404: "nothing answers at this path (/v1/openapi.json lists the API's operations)",
        405: f"{request.method} is not allowed on this path; Allow lists what is",
    }.get(exc.status_code, str(exc.detail))
    code = CODES.get(exc.status_code, "error")
    return _answer(request, exc.status_code, code, detail, headers or None)


def install_error_handlers(api: FastAPI) -> None:
    """Our shape for HTTP errors (ours and Starlette's), validation errors and anything unexpected."""

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail = "; ".join(f"{_location(e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        return _answer(request, 422, CODES[422], detail, None)

    async def failed(request: Request, exc: Exception) -> JSONResponse:
        log.error("api.failed", method=request.method, exc_info=exc)
        return JSONResponse(
            ErrorBody(error="internal_error", detail="the server failed; its log says why").model_dump(),
            status_code=500,
        )

    api.add_exception_handler(HTTPException, http_error)
    api.add_exception_handler(RequestValidationError, invalid)
    api.add_exception_handler(Exception, failed)


def refuse_nul(request: Request) -> None:
    """An app-wide dependency: 400 for a NUL character in the path or the query."""
    where = None
    if "\x00" in request.scope["path"]:
        where = "path"
    elif any("\x00" in part for pair in request.query_params.multi_items() for part in pair):
        where = "query"
    if where is not None:
        raise ApiError(400, "invalid_characters", f"the {where} holds a NUL character; no value may")


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _error_content() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


def document_errors(api: FastAPI, *, reader: Callable[..., Any], writer: Callable[..., Any]) -> None:
    """Extend the OpenAPI document: on every operation, each error status it can answer with the
    ErrorBody schema — 400 always, 401 where a token is needed (`reader`), 403 where a write token
    is (`writer`), 404 where the path names something, 422 where FastAPI validates a request, and
    any status a route declares itself (`responses={409: {"description": …}}`)."""
    build = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is not None:
            return api.openapi_schema
        document = build()
        for route in api.routes:
            if isinstance(route, APIRoute) and route.include_in_schema:
                for method in route.methods or ():
                    _document(document["paths"][route.path_format][method.lower()], route, reader, writer)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["ErrorBody"] = ErrorBody.model_json_schema()
        text = orjson.dumps(document).decode()
        for unused in ("HTTPValidationError", "ValidationError"):
            if f"#/components/schemas/{unused}" not in text:
                schemas.pop(unused, None)
        document["info"]["description"] = ERRORS_DESCRIPTION
        api.openapi_schema = document
        return document

    api.openapi = openapi  # type: ignore[method-assign]


def _document(
    operation: dict[str, Any], route: APIRoute, reader: Callable[..., Any], writer: Callable[..., Any]
) -> None:
    calls = set(_calls(route.dependant))
    for parameter in operation.get("parameters", []):
        _no_nul(parameter.get("schema", {}))
    wanted = {400: "A NUL character in the path or query, or a request this operation refuses (see detail)."}
    if reader in calls or writer in calls:
        wanted[401] = "No bearer token, or an unknown or revoked one."
    if writer in calls:
        wanted[403] = "A read-only token on an operation that writes."
    if "{" in route.path_format:
        wanted[404] = "Nothing has that id or name."
    responses = operation.setdefault("responses", {})
    for status, description in wanted.items():
        responses.setdefault(str(status), {"description": description})
    for status, answer in responses.items():
        if status.isdigit() and 400 <= int(status) < 500:
            if status == "422" and answer.get("description") == "Validation Error":  # FastAPI's
                answer["description"] = "The request does not match this document (see detail)."
            answer["content"] = _error_content()


def _no_nul(schema: dict[str, Any]) -> None:
    """Say in a parameter's schema what `refuse_nul` enforces: its strings hold no NUL."""
    if schema.get("type") == "string" and "format" not in schema and "enum" not in schema:
        schema.setdefault("pattern", NO_NUL)
    for alternative in schema.get("anyOf", []):
        _no_nul(alternative)
