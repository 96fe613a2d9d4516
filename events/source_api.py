"""A source's vendor API (its daily quota, credentials and rate limits) and its sync schedule,
validated when the sources file loads.

    [sources.shop.api]                    # what syncs (and later event-driven fetches) call
    base_url = "https://acme.myshopify.com"
    token = "${SHOPIFY_ADMIN_TOKEN}"      # SecretStr: never shown
    account = "42"                        # the vendor's account id, where it needs one (Chatwoot, GA4)
    user = "agent@example.com"            # Zendesk only: the agent an API token belongs to (Basic auth)
    page_size = 100                       # optional; each stream caps it at the vendor's maximum
    limits = { points = { capacity = 2000, restore_per_s = 100 } }   # the budget's limits, by name
    daily_quota = 40000                   # optional: calls per UTC day (`hookyard status` forecasts it)

    [sources.shop.sync]                   # the streams beat keeps fresh, and how often
    orders = "5m"
    customers = "1h"

    [sources.shop.fetch]                  # event-driven fetches (workers.fetching)
    streams = ["orders"]                  # read whole, through these streams, the objects events name
    types = ["order.*"]                   # optional: only events of these canonical types (globs)
    window = "10s"                        # requests for one object within it make one fetch

`base_url` and `token` go together; without them the block may hold the quota alone, and the source
has no syncs. A source with `[sources.X.oauth]` gives `base_url` alone: its token is the connection's.
A limit override is a window (`count` per `period_s`) or a bucket (`capacity`,
`restore_per_s`), optionally with a `reserve` for real-time work; it replaces the vendor's default of
that name (connectors.budget.VENDOR_LIMITS) and keeps its unit. Every mistake is one ConfigError naming
the file, the source and the field; `sources.py` expands `${VAR}` before this module sees the values.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, ValidationError, model_validator

from connectors.base import ConnectorSpec, config_error
from connectors.budget import Limit, Unit, limits_for
from events.dlq import parse_duration
from schemas.errors import ConfigError, HookyardError

MIN_INTERVAL_S = 1.0
MAX_WINDOW_S = 3600.0  # a coalescing window longer than this holds data back for no gain
DEFAULT_WINDOW_S = 10.0
COST_LARGEST = 100.0  # the largest single debit of a cost window (a GA4 report costs about 10)


class LimitOverride(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    count: float | None = Field(default=None, gt=0)
    period_s: float | None = Field(default=None, gt=0)
    capacity: float | None = Field(default=None, gt=0)
    restore_per_s: float | None = Field(default=None, gt=0)
    reserve: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_shape(self) -> LimitOverride:
        window = self.count is not None and self.period_s is not None
        bucket = self.capacity is not None and self.restore_per_s is not None
        if window == bucket or (window and self.capacity is not None) or (bucket and self.count is not None):
            raise ValueError("give count and period_s (a window), or capacity and restore_per_s (a bucket)")
        return self

    def limit(self, default: Limit) -> Limit:
        reserve = default.reserve if self.reserve is None else self.reserve
        if self.count is not None and self.period_s is not None:
            largest = COST_LARGEST if default.unit is Unit.COST else 1.0
            return Limit.window(
                default.name,
                self.count,
                self.period_s,
                largest=largest,
                reserve=reserve,
                unit=default.unit,
                optional=default.optional,
            )
        assert self.capacity is not None and self.restore_per_s is not None
        return Limit.bucket(
            default.name,
            self.capacity,
            self.restore_per_s,
            reserve=reserve,
            unit=default.unit,
            optional=default.optional,
        )


class _ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: HttpUrl | None = None
    token: SecretStr | None = None
    account: str | None = Field(default=None, min_length=1)
    user: str | None = Field(default=None, min_length=1)
    page_size: int | None = Field(default=None, ge=1, le=250_000)
    limits: dict[str, LimitOverride] = {}
    daily_quota: int | None = Field(default=None, ge=1)  # calls per UTC day; None: no quota


@dataclass(frozen=True)
class ApiAccess:
    """How syncs call a source's vendor API: where, with which credentials, within which limits."""

    base_url: str
    token: SecretStr | None  # None: the source's OAuth connection provides it (events.refresh)
    account: str | None
    user: str | None
    page_size: int | None
    limits: tuple[Limit, ...]


@dataclass(frozen=True)
class SourceApi:
    """`[sources.X.api]`: the daily quota (events.targets' forecasts) and, when given, the access."""

    daily_quota: int | None = None
    access: ApiAccess | None = None  # None: no base_url and token, so no syncs


ACCESS_ONLY = ("account", "user", "page_size", "limits")


def load_api(
    raw: Mapping[str, Any], connector: ConnectorSpec, where: str, *, oauth: bool = False
) -> SourceApi:
    """Validate `[sources.X.api]` (its `${VAR}`s already expanded) against the connector's API;
    `oauth`: the source has an OAuth connection, which supplies the token."""
    try:
        model = _ApiModel.model_validate(raw)
    except ValidationError as exc:
        raise config_error(where, exc) from None
    if model.base_url is None and model.token is None:
        given = [name for name in ACCESS_ONLY if name in raw]
        if given:
            raise ConfigError(f"{where}.{given[0]}: it needs base_url and token")
        return SourceApi(daily_quota=model.daily_quota)
    if model.base_url is None or (model.token is None and not oauth):
        missing = "base_url" if model.base_url is None else "token"
        raise ConfigError(f"{where}.{missing}: base_url and token go together (or [oauth] gives the token)")
    if connector.api is None:
        raise ConfigError(f"{where}: connector {connector.name} has no pull API to call")
    if connector.api.account and model.account is None:
        raise ConfigError(f"{where}.account: required for {connector.name} ({connector.api.account})")
    defaults = {limit.name: limit for limit in limits_for(connector.name)}
    overrides = {}
    for name, override in model.limits.items():
        if name not in defaults:
            known = ", ".join(defaults) or "none"
            raise ConfigError(f"{where}.limits.{name}: not a limit of {connector.name} (its limits: {known})")
        try:
            overrides[name] = override.limit(defaults[name])
        except ConfigError as exc:
            raise ConfigError(f"{where}.limits.{name}: {exc}") from None
    access = ApiAccess(
        base_url=str(model.base_url).rstrip("/"),
        token=model.token,
        account=model.account,
        user=model.user,
        page_size=model.page_size,
        limits=limits_for(connector.name, overrides),
    )
    return SourceApi(daily_quota=model.daily_quota, access=access)


def load_sync(raw: Mapping[str, Any], connector: ConnectorSpec, where: str) -> dict[str, float]:
    """Validate `[sources.X.sync]`: stream name → interval in seconds ("30s", "5m", "1h", "1d")."""
    streams = connector.api.streams if connector.api is not None else {}
    schedule = {}
    for name, value in raw.items():
        if name not in streams:
            known = ", ".join(streams) or "none"
            raise ConfigError(f"{where}.{name}: not a stream of {connector.name} (its streams: {known})")
        if not isinstance(value, str):
            raise ConfigError(f'{where}.{name}: an interval is text such as "5m", got {value!r}')
        try:
            seconds = parse_duration(value).total_seconds()
        except HookyardError as exc:
            raise ConfigError(f"{where}.{name}: {exc}") from None
        if seconds < MIN_INTERVAL_S:
            raise ConfigError(f"{where}.{name}: the interval must be at least {MIN_INTERVAL_S:g}s")
        schedule[name] = seconds
    return schedule


class _FetchModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    streams: list[str] = Field(min_length=1)
    types: list[str] = []
    window: str = f"{DEFAULT_WINDOW_S:g}s"


@dataclass(frozen=True)
class FetchConfig:
    """`[sources.X.fetch]`: which objects events name are read whole, and the coalescing window."""

    streams: tuple[str, ...]
    types: tuple[str, ...] = ()  # canonical event types (globs); () means every type
    window_s: float = DEFAULT_WINDOW_S

    def wants(self, event_type: str, stream: str) -> bool:
        """Whether an event of this type asks for a fetch of an object of this stream."""
        return stream in self.streams and (
            not self.types or any(fnmatch.fnmatchcase(event_type, t) for t in self.types)
        )


def load_fetch(raw: Mapping[str, Any], connector: ConnectorSpec, api: SourceApi, where: str) -> FetchConfig:
    """Validate `[sources.X.fetch]` against the connector's API and the source's access to it."""
    try:
        model = _FetchModel.model_validate(raw)
    except ValidationError as exc:
        raise config_error(where, exc) from None
    if connector.api is None or connector.api.subjects is None:
        raise ConfigError(f"{where}: connector {connector.name} names no objects in its events to fetch")
    if api.access is None:
        raise ConfigError(f"{where}: fetches need the vendor API's base_url and token in [api]")
    fetchable = [name for name, stream in connector.api.streams.items() if stream.fetch is not None]
    for name in model.streams:
        if name not in fetchable:
            raise ConfigError(
                f"{where}.streams: {name!r} is not a stream of {connector.name} that reads one object "
                f"(those are: {', '.join(fetchable)})"
            )
    for pattern in model.types:
        if not pattern.strip():
            raise ConfigError(f"{where}.types: an event type cannot be empty")
    try:
        window_s = parse_duration(model.window).total_seconds()
    except HookyardError as exc:
        raise ConfigError(f"{where}.window: {exc}") from None
    if window_s > MAX_WINDOW_S:
        raise ConfigError(f"{where}.window: at most {MAX_WINDOW_S:g}s")
    return FetchConfig(tuple(dict.fromkeys(model.streams)), tuple(model.types), window_s)
