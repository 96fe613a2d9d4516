"""Action types: what a matching rule does, and the parameters each one takes.

An action type is any object with a `name` and a pydantic `params` model, published under the
`hookyard.actions` entry-point group, as connectors are:

    [project.entry-points."hookyard.actions"]
    "pagerduty.trigger" = "acme_actions:PAGERDUTY"

In a `params` model, a field typed `Templated[...]` is a template: each string in it is compiled
when the rule loads and rendered per event. A field typed `Secret[...]` may be written `${VAR}`
(environment, then the secrets file), is expanded when the rule loads; type it SecretStr so it
stays out of reprs and logs.
Parameter models receive the configured source names as validation context (`info.context`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from connectors.standard_webhooks.verify import key as standard_webhooks_key
from rules.constants import ACTIONS_GROUP, TAG_MAX_CHARS
from schemas.errors import ConfigError
from schemas.plugins import Plugins, implementing

T = TypeVar("T")


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


TEMPLATED = _Marker("Templated")
SECRET = _Marker("Secret")
Templated = Annotated[T, TEMPLATED]
Secret = Annotated[T, SECRET]


def marked(model: type[BaseModel], marker: _Marker) -> tuple[str, ...]:
    """The fields of a params model that carry `marker` (TEMPLATED or SECRET)."""
    return tuple(name for name, field in model.model_fields.items() if marker in field.metadata)


@runtime_checkable
class ActionType(Protocol):
    """A kind of action a rule can take."""

    name: str
    params: type[BaseModel]  # the action's parameters, as written under [[actions]] beside `type`


@dataclass(frozen=True)
class BuiltIn:
    name: str
    params: type[BaseModel]


registry = Plugins[ActionType](ACTIONS_GROUP, "action type", implementing(ActionType, "action type"))


def _url(value: SecretStr | None) -> SecretStr | None:
    if value is not None:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("not an http(s) URL")
    return value


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackPost(_Params):
    """A message to an incoming-webhook URL, or through chat.postMessage with a bot token and a channel."""

    webhook_url: Secret[SecretStr | None] = None
    token: Secret[SecretStr | None] = None
    channel: str | None = None
    api_url: str = "https://slack.com/api"  # where chat.postMessage lives (a test points it at a fake)
    text: Templated[str | None] = None
    blocks: Templated[list[dict[str, Any]] | None] = None  # Block Kit; every string in it is a template

    _check_url = field_validator("webhook_url")(_url)

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        _url(SecretStr(value))
        return value

    @model_validator(mode="after")
    def _target(self) -> SlackPost:
        if (self.webhook_url is None) == (self.token is None):
            raise ValueError("give webhook_url, or token and channel (one of the two)")
        if self.token is not None and not self.channel:
            raise ValueError("channel is required with token")
        if self.text is None and self.blocks is None:
            raise ValueError("give text, blocks or both")
        return self


class HttpPost(_Params):
    """An outbound webhook, signed per Standard Webhooks; `body` defaults to the event as JSON."""

    url: Secret[SecretStr]
    secret: Secret[SecretStr]  # whsec_<base64>, what the receiver verifies with
    body: Templated[dict[str, Any] | None] = None
    headers: dict[str, str] = {}
    timeout_s: float = Field(default=10.0, gt=0, le=60)

    _check_url = field_validator("url")(_url)

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value: SecretStr) -> SecretStr:
        try:
            standard_webhooks_key(value.get_secret_value())
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value


class SyncTrigger(_Params):
    """Run one of a source's sync streams now (`object` names the stream), or, with an `id`, fetch
    that one object through the stream and store it as a sync would."""

    source: str
    object: str
    id: Templated[str | None] = None

    @field_validator("source")
    @classmethod
    def _configured(cls, value: str, info: ValidationInfo) -> str:
        sources = (info.context or {}).get("sources")
        if sources is not None and value not in sources:
            raise ValueError(f"unknown source {value!r}; configured: {', '.join(sorted(sources)) or 'none'}")
        return value

    @model_validator(mode="after")
    def _object_and_id(self) -> SyncTrigger:
        if (self.object is None) != (self.id is None):
            raise ValueError("object and id go together")
        return self


class EventTag(_Params):
    """Add tags to the stored event (a tag that renders empty is left out)."""

    tags: Templated[list[Annotated[str, Field(max_length=TAG_MAX_CHARS)]]] = Field(min_length=1)


SLACK_POST = BuiltIn("slack.post", SlackPost)
HTTP_POST = BuiltIn("http.post", HttpPost)
SYNC_TRIGGER = BuiltIn("sync.trigger", SyncTrigger)
EVENT_TAG = BuiltIn("event.tag", EventTag)
