"""Fake Slack (apis.md §6): `POST /api/chat.postMessage` with a bot token (errors are HTTP 200
`{"ok": false, "error": …}`; about one message per second per channel, then 429 + Retry-After +
`ratelimited`) and incoming webhooks `POST /services/T…/B…/…` answering `ok`. Every accepted
message is recorded for `GET /_fake/posts`."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes.base import Fake, json_response, read_form
from tests.fakes.config import ConfigError
from tests.fakes.limits import FixedWindow, retry_after

AUTH_ERRORS = {"missing": "not_authed", "invalid": "invalid_auth", "expired": "token_expired"}
SLACK_JSON = "application/json; charset=utf-8"


def pairs(items: list[str], setting: str) -> dict[str, str]:
    """ "A:B" strings as {A: B}; the last colon splits."""
    result = {}
    for item in items:
        left, sep, right = item.rpartition(":")
        if not sep or not left or not right:
            raise ConfigError(f"{setting}: {item!r} is not 'A:B'")
        result[left] = right
    return result


class SlackFake(Fake):
    name = "slack"
    records_posts = True
    DEFAULTS = {
        "tokens": ["xoxb-fake"],
        "channels": ["C0ALERTS:alerts", "C0OPS:ops", "C0PRIVATE:private"],  # "id:name"
        "not_in_channels": ["C0PRIVATE"],  # channels the bot is not a member of
        "webhooks": ["T0FAKE/B0FAKE/fakesecret:C0ALERTS"],  # "T…/B…/secret:channel id"
        "limits": {"per_channel_per_s": 1},
    }

    def setup(self) -> None:
        self.channels = pairs(self.config["channels"], "channels")
        self.names = {name: cid for cid, name in self.channels.items()}
        self.hooks = pairs(self.config["webhooks"], "webhooks")
        self.per_channel = FixedWindow("channel", self.config["limits"]["per_channel_per_s"], 1.0)
        self.sequence = 0

    def routes(self) -> list[Route]:
        return [
            self.route("POST", "/api/chat.postMessage", self.post_message),
            self.route("POST", "/services/{team}/{bot}/{secret}", self.incoming_webhook, auth=False),
        ]

    def token(self, request: Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return value if scheme.lower() == "bearer" else None

    def failed(self, error: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return json_response({"ok": False, "error": error}, status, headers, SLACK_JSON)

    def unauthorized(self, request: Request, reason: str) -> Response:
        return self.failed(AUTH_ERRORS[reason])

    def error_response(self, request: Request, status: int, code: str) -> Response:
        if request.url.path.startswith("/services/"):
            return PlainTextResponse(code or "internal_error", status)
        return self.failed(code or "internal_error", status)

    def stamp(self) -> str:
        self.sequence += 1
        return f"{int(self.now())}.{self.sequence:06d}"

    def throttled(self, request: Request, channel: str) -> float:
        return self.admit(request, [(self.per_channel, channel, 1)]).wait_s

    async def post_message(self, request: Request) -> Response:
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                body: dict[str, Any] = json.loads(await request.body())
            except ValueError:
                return self.failed("invalid_json")
        else:
            body = dict(await read_form(request))
            try:
                body["blocks"] = json.loads(body["blocks"]) if body.get("blocks") else None
            except ValueError:
                return self.failed("invalid_blocks")
        wanted = str(body.get("channel") or "")
        channel = wanted if wanted in self.channels else self.names.get(wanted.lstrip("#"), "")
        if not channel:
            return self.failed("channel_not_found")
        if channel in self.config["not_in_channels"]:
            return self.failed("not_in_channel")
        if not body.get("text") and not body.get("blocks"):
            return self.failed("no_text")
        if wait := self.throttled(request, channel):
            return self.failed("ratelimited", 429, {"Retry-After": retry_after(wait)})
        ts = self.stamp()
        post = {"kind": "chat", "channel": channel, "text": body.get("text"), "blocks": body.get("blocks")}
        self.posts.append(post | {"ts": ts, "thread_ts": body.get("thread_ts")})
        message = {"type": "message", "text": body.get("text") or "", "ts": ts, "bot_id": "B0FAKE"}
        return json_response(
            {"ok": True, "channel": channel, "ts": ts, "message": message}, media_type=SLACK_JSON
        )

    async def incoming_webhook(self, request: Request) -> Response:
        params = request.path_params
        channel = self.hooks.get(f"{params['team']}/{params['bot']}/{params['secret']}")
        if channel is None:
            return PlainTextResponse("no_service", 404)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse("invalid_payload", 400)
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return PlainTextResponse("no_text", 400)
        if wait := self.throttled(request, channel):
            return PlainTextResponse("rate_limited", 429, headers={"Retry-After": retry_after(wait)})
        post = {"kind": "webhook", "channel": channel, "text": body.get("text"), "blocks": body.get("blocks")}
        self.posts.append(post | {"ts": self.stamp(), "thread_ts": None})
        return PlainTextResponse("ok")


FAKE = SlackFake
