"""The operator API's contract: one error shape everywhere, every status documented, no 500 from a
NUL or a huge number, and Swagger UI served from the package (no CDN)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.routing import Mount
from structlog.testing import capture_logs

from events import dlq, metrics
from ops.api import create_api
from schemas.errors import MalformedError
from tests.unit.test_api import Client, dead_event, record_publish, token
from tests.unit.test_web import make_settings, run_app


@pytest.fixture
def client(engine: Engine) -> Client:
    return Client(Starlette(routes=[Mount("/v1", app=create_api(engine, {}, publish=record_publish))]))


def assert_error(resp: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """The answer is JSON with exactly `error` and a textual `detail`."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "detail"} and body["error"] == error, body
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def test_validation_errors_are_our_shape_with_text_detail(client: Client, engine: Engine) -> None:
    """A 422 says where and what in plain text, never a Python repr of pydantic's errors."""
    read = token(engine, "read")
    body = assert_error(client.get("/v1/dead-letters?limit=0", headers=read), 422, "invalid_request")
    assert body["detail"] == "query.limit: Input should be greater than or equal to 1"
    body = assert_error(client.get("/v1/dead-letters?state=bogus", headers=read), 422, "invalid_request")
    assert body["detail"].startswith("query.state: ") and "{'" not in body["detail"]


def test_starlette_404_and_405_under_v1_are_our_shape(client: Client, engine: Engine) -> None:
    """No such path: 404 not_found; a method the path does not take: 405 with Allow; a trailing
    slash is a 404, not a redirect."""
    read = token(engine, "read")
    assert_error(client.get("/v1/no-such-thing", headers=read), 404, "not_found")
    assert_error(client.get("/v1/dead-letters/", headers=read), 404, "not_found")
    resp = client.request("PUT", "/v1/dead-letters", headers=read)
    assert_error(resp, 405, "method_not_allowed")
    assert resp.headers["allow"] == "GET"
    assert_error(client.get("/v1/dead-letters"), 401, "unauthorized")


def test_a_path_the_web_app_cannot_route_is_json_too(tmp_path: Path) -> None:
    """In the whole web app, a /v1 path no route can take (a newline in it) is our JSON 404."""
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path}/web.db")

    async def scenario(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get("/v1/dead-letters/a%0Ab")

    assert_error(run_app(settings, scenario), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("GET", "/v1/dead-letters?source=a%00b", None, 400, "invalid_characters"),
        ("GET", "/v1/dead-letters/a%00b", None, 400, "invalid_characters"),
        ("GET", "/v1/events/a%00b", None, 400, "invalid_characters"),
        ("GET", "/v1/dead-letters?offset=99999999999999999999999", None, 422, "invalid_request"),
        ("GET", "/v1/dead-letters?offset=9223372036854775808", None, 422, "invalid_request"),
        ("POST", "/v1/dead-letters/replay", {"ids": ["a\u0000b"]}, 422, "invalid_request"),
        ("POST", "/v1/dead-letters/replay", {"where": {"source": "a\u0000"}}, 422, "invalid_request"),
        ("POST", "/v1/dead-letters/purge", {"older_than": "1\u00b2d"}, 422, "invalid_request"),
        ("PATCH", "/v1/dead-letters/x", {"set": {"a\u0000": 1}}, 422, "invalid_request"),
    ],
)
def test_nul_and_huge_numbers_are_refused_never_500(
    client: Client, engine: Engine, method: str, path: str, body: Any, status: int, error: str
) -> None:
    """PostgreSQL's text cannot hold a NUL, and no page starts past 2**31: both are 4xx at the door."""
    resp = client.request(method, path, json=body, headers=token(engine, "write"))
    assert_error(resp, status, error)


def test_editing_a_missing_or_replayed_dead_letter_is_404_or_409(client: Client, engine: Engine) -> None:
    """No such dead letter: 404; one already replayed: 409; neither is an invalid payload."""
    write = token(engine, "write")
    edit = {"set": {"data.object.currency": "usd"}}
    assert_error(client.patch("/v1/dead-letters/nope", json=edit, headers=write), 404, "not_found")
    event_id = dead_event(engine)
    assert client.patch(f"/v1/dead-letters/{event_id}", json=edit, headers=write).status_code == 200
    assert client.post("/v1/dead-letters/replay", json={"ids": [event_id]}, headers=write).status_code == 200
    assert_error(client.patch(f"/v1/dead-letters/{event_id}", json=edit, headers=write), 409, "conflict")


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_every_status_is_documented_with_the_error_schema(engine: Engine) -> None:
    """Each operation lists 400, 401, 403 (exactly the writes: every method but GET), 404 (a path
    naming something) and 422 (a request to validate), each with the ErrorBody schema; FastAPI's own
    validation schema is gone; string parameters say they take no NUL."""
    document = create_api(engine, {}).openapi()
    error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    assert document["components"]["schemas"]["ErrorBody"]["required"] == ["error", "detail"]
    assert "HTTPValidationError" not in orjson.dumps(document).decode()
    assert len(operations(document)) >= 8
    for method, path, operation in operations(document):
        expected = {"400", "401"} | ({"403"} if method != "get" else set())
        expected |= {"404"} if "{" in path else set()
        expected |= {"422"} if operation.get("parameters") or operation.get("requestBody") else set()
        errors = {status for status in operation["responses"] if status.startswith("4")}
        assert expected <= errors, (method, path, errors)
        assert ("403" in errors) == (method != "get"), (method, path)
        for status in errors:
            assert operation["responses"][status]["content"] == error_body, (method, path, status)
        for parameter in operation.get("parameters", []):
            alternatives = parameter["schema"].get("anyOf", [parameter["schema"]])
            for schema in alternatives:
                if schema.get("type") == "string" and "format" not in schema and "enum" not in schema:
                    assert schema["pattern"] == dlq.NO_NUL, (method, path, parameter["name"])


def test_swagger_ui_is_served_from_the_package_not_a_cdn(client: Client) -> None:
    """/v1/docs loads its script and stylesheet from /v1/docs/static, which serves them: no CDN."""
    page = client.get("/v1/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
    assert urls and all(url.startswith("/v1/") for url in urls), urls
    assert "/v1/openapi.json" in urls
    for asset in ("/v1/docs/static/swagger-ui-bundle.js", "/v1/docs/static/swagger-ui.css"):
        assert asset in urls
        resp = client.get(asset)
        assert resp.status_code == 200 and len(resp.content) > 10_000, asset


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("1.5h", 5400), ("30D", 30 * 86400), (" 2w ", 14 * 86400), ("9" * 40 + "d", None)],
)
def test_durations_parse_and_huge_ones_are_capped(text: str, seconds: float | None) -> None:
    """A duration is a number and s, m, h, d or w; one past a century is a century (no overflow)."""
    expected = dlq.MAX_AGE.total_seconds() if seconds is None else seconds
    assert dlq.parse_duration(text).total_seconds() == expected


@pytest.mark.parametrize("text", ["", "d", "7", "1\u00b2d", "1e5d", "-3d", "7 d"])
def test_malformed_durations_are_refused(text: str) -> None:
    """Anything else (unicode digits, exponents, signs) is a MalformedError, never a ValueError."""
    with pytest.raises(MalformedError):
        dlq.parse_duration(text)


def test_each_refusal_is_logged_and_counted(client: Client) -> None:
    """A refusal is a structured `api.rejected` line (status, code, route template) and a count."""
    counter = metrics.API_REJECTIONS.labels("401", "unauthorized")
    before = counter._value.get()
    with capture_logs() as logs:
        client.get("/v1/dead-letters/some-id")
    [line] = [entry for entry in logs if entry["event"] == "api.rejected"]
    assert (line["status"], line["error"], line["route"]) == (401, "unauthorized", "/dead-letters/{event_id}")
    assert counter._value.get() == before + 1
