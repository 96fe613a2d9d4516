"""What each action type does, given its rendered parameters and a `Call`.

An executor makes exactly one try (the run's retries wait in the database) and returns an `Effect`:
what the target answered, and optionally a database write that commits in the same transaction as
the run's `done` (so `event.tag` happens exactly once). Failures are raised from the error tree:
transient ones (5xx, timeouts, 429 as `Throttled` with the remote's wait) are retried, permanent ones
dead-lettered.

    slack.post    an incoming webhook, or chat.postMessage with a bot token (connectors.http VendorClient
                  with Slack's hooks: `{"ok": false}` answers, ratelimited, Retry-After)
    http.post     the body signed per Standard Webhooks; `webhook-id` is the run's idempotency key, the
                  same on every try and every replay, so the receiver can deduplicate
    event.tag     tags on the stored event, written with the run's `done`
    sync.trigger  the sync engine's task, published by name (`hookyard.sync.run`)

An action type from another package runs if it has `execute(params, call) -> dict | None`, which
makes one try and raises TransientError or PermanentError on failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from pydantic import BaseModel
from sqlalchemy import Connection

from connectors.http import Answer, Hooks, Timeouts, VendorClient
from connectors.slack.client import SlackHooks
from connectors.standard_webhooks.sample import sign as sign_standard_webhook
from events.db import dialect_insert, event_tags, utcnow
from events.queue import SYNC_TASK
from rules.actions import EventTag, HttpPost, SlackPost, SyncTrigger
from rules.actions import registry as action_types
from schemas.errors import PermanentError
from schemas.retry import RetryPolicy

ONE_TRY = RetryPolicy(max_attempts=1)
SLACK_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Call:
    """What an executor needs besides its parameters."""

    key: str  # the run's idempotency key (event:rule:action index)
    event_id: str
    rule: str
    max_s: float  # the longest any timeout of an exchange may be (a quarter of the lease)
    http: httpx.Client
    now: float  # unix seconds
    event_body: Callable[[], dict[str, Any]]  # the stored event and its records as JSON (loaded on use)
    trigger_sync: Callable[[str, str, str | None, str], None]


@dataclass(frozen=True)
class Effect:
    result: dict[str, Any]
    apply: Callable[[Connection], None] | None = None  # runs in the transaction that marks it done


Executor = Callable[[Any, Call], Effect]


def _client(
    vendor: str, call: Call, base_url: str, timeout_s: float, hooks: Hooks, headers: Mapping[str, str] = {}
) -> VendorClient:
    seconds = min(timeout_s, call.max_s)
    timeouts = Timeouts(min(CONNECT_TIMEOUT_S, seconds), seconds, seconds, min(CONNECT_TIMEOUT_S, seconds))
    return VendorClient(
        vendor,
        call.rule,
        base_url,
        headers=headers,
        hooks=hooks,
        http=call.http,
        timeouts=timeouts,
        retry=ONE_TRY,
        max_wait_s=0.0,
    )


def slack_post(params: SlackPost, call: Call) -> Effect:
    message: dict[str, Any] = {"text": params.text, "blocks": params.blocks}
    message = {k: v for k, v in message.items() if v}
    if params.webhook_url is not None:
        url = params.webhook_url.get_secret_value()
        client = _client("slack", call, url, SLACK_TIMEOUT_S, SlackHooks())
        answer = client.call("POST", "/services/{hook}", url=url, json=message, expect_json=False)
        return Effect({"status": answer.status})
    assert params.token is not None  # the model requires webhook_url or token
    headers = {"Authorization": f"Bearer {params.token.get_secret_value()}"}
    client = _client("slack", call, params.api_url, SLACK_TIMEOUT_S, SlackHooks(), headers)
    answer = client.call("POST", "/chat.postMessage", json={"channel": params.channel, **message})
    body = answer.body if isinstance(answer.body, dict) else {}
    return Effect({"status": answer.status, "channel": body.get("channel"), "ts": body.get("ts")})


def http_post(params: HttpPost, call: Call) -> Effect:
    content = orjson.dumps(params.body if params.body is not None else call.event_body())
    signed = sign_standard_webhook(
        content, {"webhook-id": call.key}, params.secret.get_secret_value(), call.now
    )
    headers = {**params.headers, **signed.headers, "content-type": "application/json"}
    url = params.url.get_secret_value()
    client = _client("http", call, url, params.timeout_s, Hooks())
    answer: Answer = client.call(
        "POST", "{url}", url=url, content=content, headers=headers, expect_json=False
    )
    return Effect({"status": answer.status, "webhook_id": call.key})


def tag_names(params: EventTag) -> list[str]:
    """The tags an `event.tag` action writes: stripped, without empty ones, once each, sorted."""
    return sorted({tag.strip() for tag in params.tags if tag.strip()})


def write_tags(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert `event_tags` rows (event_id, tag, created_at); a tag the event already has is kept."""
    if rows:
        stmt = dialect_insert(conn.dialect.name)(event_tags).on_conflict_do_nothing(
            index_elements=["event_id", "tag"]
        )
        conn.execute(stmt, rows)


def event_tag(params: EventTag, call: Call) -> Effect:
    tags = tag_names(params)

    def apply(conn: Connection) -> None:
        now = utcnow()
        write_tags(conn, [{"event_id": call.event_id, "tag": tag, "created_at": now} for tag in tags])

    return Effect({"tags": tags}, apply)


def sync_trigger(params: SyncTrigger, call: Call) -> Effect:
    call.trigger_sync(params.source, params.object, params.id, call.key)
    return Effect(
        {"task": SYNC_TASK, "source": params.source, "stream": params.object, "object_id": params.id}
    )


BUILT_IN: dict[str, Executor] = {
    "slack.post": slack_post,
    "http.post": http_post,
    "event.tag": event_tag,
    "sync.trigger": sync_trigger,
}


def execute(action_type: str, params: BaseModel, call: Call) -> Effect:
    """One try of an action."""
    run = BUILT_IN.get(action_type)
    if run is not None:
        return run(params, call)
    external = getattr(action_types.get(action_type), "execute", None)
    if external is None:
        raise PermanentError(f"action type {action_type!r} has no execute(params, call): it cannot run")
    return Effect(dict(external(params, call) or {}))
