"""The connector contract: what a connector must provide, and every optional capability it may declare.

A connector is an object (usually its package) with a `name` and four functions: `verify`, `parse`,
`normalize` and `sample` (the `Connector` protocol). Headers reach it as a mapping with lower-case
names. Secrets are the source's list of secrets as configured (rotation: any one may match). `now` is
unix seconds, injected so the timestamp window can be tested at its edges. `options` is the source's
`options = {…}` table, already validated by the connector's `Options` model when the file loaded.

Everything else is optional and declared below, with its default, on `ConnectorSpec`: the one typed
object Hookyard builds from a connector when it loads it (`ConnectorSpec.of`) and hands to every
caller, so nobody probes a connector with getattr and a wrong declaration stops the process at start.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Annotated, Any, Protocol, runtime_checkable

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from connectors.streams import Api
from schemas.envelope import Envelope
from schemas.errors import ConfigError
from schemas.records import Record
from schemas.retry import RetryPolicy

Headers = Mapping[str, str]

# Content types a connector accepts; one may set `content_types` to widen the JSON default.
JSON = ("application/json",)
JSON_OR_FORM = ("application/json", "application/x-www-form-urlencoded")

DEFAULT_TOLERANCE_S = 300
MAX_TOLERANCE_S = 3600
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _header_name(value: str) -> str:
    value = value.strip()
    if not value or not set(value) <= _TOKEN:
        raise ValueError("must be an HTTP header name (letters, digits, '-' and the like)")
    return value


HeaderName = Annotated[str, AfterValidator(_header_name)]
"""An option naming an HTTP header, surrounding spaces removed, its case kept (look it up lower-cased)."""


class Options(BaseModel):
    """A connector's options: a frozen pydantic model that refuses unknown keys. This one takes none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WindowOptions(Options):
    """Options of a vendor that signs a timestamp: how far it may be from our clock, either way."""

    tolerance_s: int = Field(DEFAULT_TOLERANCE_S, ge=1, le=MAX_TOLERANCE_S)


@dataclass(frozen=True)
class Delivery:
    """One event carved out of a verified request (a batch yields several)."""

    dedupe_key: str
    type: str
    payload: Any
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class Parsed:
    """What a verified request holds: events to store, and/or a reply the vendor expects."""

    deliveries: list[Delivery] = field(default_factory=list)
    reply: dict[str, Any] | None = None


@dataclass(frozen=True)
class SignedRequest:
    """A realistic request signed like the vendor would sign it (for `hookyard send --sample`)."""

    body: bytes
    headers: dict[str, str]


@runtime_checkable
class Connector(Protocol):
    """What every vendor connector provides; the optional capabilities are on `ConnectorSpec`."""

    name: str

    def verify(self, body: bytes, headers: Headers, secrets: Sequence[str], now: float, options: Any) -> None:
        """Raise VerificationError unless the raw body and headers carry a valid signature."""

    def parse(self, body: bytes, headers: Headers, options: Any) -> Parsed:
        """Turn a verified request into deliveries (raise MalformedError when it cannot)."""

    def normalize(self, envelope: Envelope) -> list[Record]:
        """Map a stored event to canonical records; unknown types yield no records."""

    def sample(self, secret: str, now: float, options: Any = None) -> SignedRequest:
        """Build a realistic signed request; each call is a new delivery (None: default options)."""


@runtime_checkable
class Signer(Protocol):
    """Connectors that can sign a request as their vendor would, e.g. a redelivery at a later time."""

    def sign(
        self, body: bytes, headers: Headers, secret: str, now: float, options: Any = None
    ) -> SignedRequest:
        """Return the request with the vendor's signature (and timestamp) headers set for `now`."""


@runtime_checkable
class Handshake(Protocol):
    """Connectors whose vendor verifies the endpoint with a GET (Meta's hub.challenge)."""

    def handshake(self, query: Mapping[str, str], options: Any) -> str:
        """Return the body to answer the GET with; raise VerificationError to refuse it."""


Verify = Callable[[bytes, Headers, Sequence[str], float, Options], None]
Parse = Callable[[bytes, Headers, Options], Parsed]
Normalize = Callable[[Envelope], list[Record]]
Sample = Callable[[str, float, Options | None], SignedRequest]
Sign = Callable[[bytes, Headers, str, float, Options | None], SignedRequest]
AnswerHandshake = Callable[[Mapping[str, str], Options], str]

_REQUIRED = ("verify", "parse", "normalize", "sample")
_DECLARED_AS = {"options_model": "Options"}  # spec field → the connector's attribute, where they differ


@dataclass(frozen=True)
class ConnectorSpec:
    """One connector as Hookyard uses it: the contract's functions and its declared capabilities."""

    name: str
    verify: Verify
    parse: Parse
    normalize: Normalize
    sample: Sample

    content_types: tuple[str, ...] = JSON
    """Media types a POST may carry; JSON only unless the connector widens it (`JSON_OR_FORM`)."""
    timestamped: bool | None = None
    """Whether the vendor signs a timestamp (the kit's window checks); None: it depends on the options."""
    sign: Sign | None = None
    """Re-sign a body for a later attempt (`Signer`); `hookyard send --set` and the kit's redelivery check."""
    handshake: AnswerHandshake | None = None
    """Answer the vendor's GET verification of the endpoint (`Handshake`); None: GET is refused."""
    retry_policy: RetryPolicy = RetryPolicy()
    """How processing retries this vendor's events; a source's `retry = {…}` overrides it."""
    options_model: type[Options] = Options
    """The `Options` model a source's `options = {…}` must fit; the default allows no options."""
    api: Api | None = None
    """The vendor's pull API (`connectors.streams.Api`): credentials and streams for syncs; None: none."""
    webhooks: bool = True
    """Whether the vendor sends webhooks; a pull-only vendor (GA4) takes no secrets and verifies nothing."""

    @classmethod
    def of(cls, connector: object) -> ConnectorSpec:
        """The spec of a connector object (its package, or an instance); ConfigError names what is wrong."""
        if isinstance(connector, ConnectorSpec):
            return connector
        name = getattr(connector, "name", None)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"connector {connector!r} has no `name`")
        calls: dict[str, Any] = {attr: getattr(connector, attr, None) for attr in _REQUIRED}
        problems = [
            f"{attr} is missing or not a function" for attr, call in calls.items() if not callable(call)
        ]
        declared: dict[str, Any] = {}
        for spec_field in fields(cls):
            attr = _DECLARED_AS.get(spec_field.name, spec_field.name)
            if spec_field.name in calls or attr == "name" or not hasattr(connector, attr):
                continue
            value = getattr(connector, attr)
            problem = _problem(spec_field.name, value)
            if problem:
                problems.append(f"{attr} {problem}, got {value!r}")
            elif spec_field.name == "content_types":
                declared[spec_field.name] = tuple(value)
            else:
                declared[spec_field.name] = value
        if problems:
            raise ConfigError(f"connector {name!r}: {'; '.join(problems)}")
        return cls(name=name, **calls, **declared)

    def load_options(self, raw: Mapping[str, Any], where: str) -> Options:
        """A source's options validated by this connector's model; ConfigError names `where` and the field."""
        try:
            return self.options_model.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            if err["type"] != "extra_forbidden":
                raise config_error(where, exc) from None
            takes = ", ".join(self.options_model.model_fields) or "none"
            raise ConfigError(
                f"{where}.{err['loc'][0]}: not an option of connector {self.name} (its options: {takes})"
            ) from None


def config_error(where: str, exc: ValidationError) -> ConfigError:
    """One line for pydantic's first complaint: `where`, the field's path and pydantic's message (never
    the value, which may be a secret)."""
    err = exc.errors()[0]
    loc = ".".join([where, *(str(part) for part in err["loc"])])
    return ConfigError(f"{loc}: {err['msg']}")


def _problem(name: str, value: Any) -> str | None:
    """What is wrong with a declared capability, or None."""
    if name == "content_types":
        media = (
            isinstance(value, tuple | list) and value and all(isinstance(t, str) and "/" in t for t in value)
        )
        return None if media else "must be a tuple of media types"
    if name == "timestamped":
        return None if value is None or isinstance(value, bool) else "must be True, False or None"
    if name in ("sign", "handshake"):
        return None if value is None or callable(value) else "must be a function"
    if name == "api":
        return None if value is None or isinstance(value, Api) else "must be a connectors.streams.Api"
    if name == "webhooks":
        return None if isinstance(value, bool) else "must be True or False"
    if name == "retry_policy":
        return None if isinstance(value, RetryPolicy) else "must be a schemas.retry.RetryPolicy"
    if not (isinstance(value, type) and issubclass(value, Options)):
        return "must be a subclass of connectors.base.Options"
    return (
        None if value.model_config.get("extra") == "forbid" else "must refuse unknown keys (extra='forbid')"
    )
