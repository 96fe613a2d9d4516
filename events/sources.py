"""The sources file: which webhooks are accepted, with which connector, secrets and options.

    [sources.payments]                   # URL: POST /webhooks/payments
    connector = "stripe"
    secrets = ["${STRIPE_WEBHOOK_SECRET}"]   # a list: rotation; ${VAR} reads the environment
    options = { tolerance_s = 300 }      # what the connector's Options model allows, nothing else

    [sources.payments.forward]           # optional: deliver each processed event downstream
    url = "https://internal.example/hooks/payments"
    headers = { Authorization = "Bearer ${DOWNSTREAM_TOKEN}" }
    timeout_s = 10

`${VAR}` reads the environment, then the secrets file (a dotenv file, kept outside the repo). It is
expanded in secrets, string options and the forward block, and then everything is validated: a
mistake is one ConfigError naming file, source and field, raised when the file loads. Secrets, forward
headers and the forward URL are SecretStr: no repr, log line or error message shows them.
A top-level `rules_dir = "rules"` names the folder of automation rules, relative to this file.
`[sources.X.oauth]` connects the source to its vendor's API through OAuth (`events.oauth_config`);
tokens are kept sealed, so such a source also needs HOOKYARD_TOKEN_KEYS (`events.secretbox`).
`[sources.X.api]`, `[sources.X.sync]` and `[sources.X.fetch]` (vendor API quota and credentials,
streams to keep fresh, objects events name to read whole) are read by `events.source_api`; a
pull-only connector (GA4: `webhooks = False`) takes an API, no secrets.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from dotenv.parser import parse_stream
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    TypeAdapter,
    ValidationError,
)
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from connectors import registry
from connectors.base import ConnectorSpec, HeaderName, Options, config_error
from connectors.internal import INTERNAL_SOURCE
from events.oauth_config import OAuthConfig, load_oauth
from events.secretbox import load_box
from events.source_api import FetchConfig, SourceApi, load_api, load_fetch, load_sync
from events.targets import AnomalyConfig, SlaConfig
from schemas.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_FORWARD_TIMEOUT_S = 60.0  # a forward holds the event's lease (worker.lease_s, 120 s by default)
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def _http_url(value: SecretStr) -> SecretStr:
    try:
        _HTTP_URL.validate_python(value.get_secret_value())
    except ValidationError as exc:
        raise PydanticCustomError("http_url", exc.errors()[0]["msg"]) from None  # the reason, never the URL
    return value


def _header_value(value: SecretStr) -> SecretStr:
    if any(char in value.get_secret_value() for char in "\r\n\0"):
        raise ValueError("a header value cannot contain line breaks or NUL")
    return value


class Forward(BaseModel):
    """Deliver each processed event to a downstream URL (with an Idempotency-Key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: Annotated[SecretStr, AfterValidator(_http_url)]
    """An http(s) URL; secret, as it may carry credentials (user:password@, a token in its path)."""
    headers: dict[HeaderName, Annotated[SecretStr, AfterValidator(_header_value)]] = {}
    timeout_s: float = Field(default=10.0, gt=0, le=MAX_FORWARD_TIMEOUT_S)

    @property
    def safe_url(self) -> str:
        """Scheme, host and port only: what logs and error messages may show of the URL."""
        parts = urlsplit(self.url.get_secret_value())
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}/…"


class Retry(BaseModel):
    """Overrides of the connector's retry policy for this source."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    base_s: float | None = Field(default=None, gt=0)
    cap_s: float | None = Field(default=None, gt=0)


class _SourceModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connector: str
    secrets: list[str] | None = None  # required unless the connector receives no webhooks
    options: dict[str, Any] = {}
    forward: dict[str, Any] | None = None  # validated once its ${VAR}s are expanded
    retry: Retry = Retry()
    replay_guard: bool | None = None
    oauth: dict[str, Any] | None = None  # validated once its ${VAR}s are expanded
    sla: SlaConfig | None = None
    anomaly: AnomalyConfig = AnomalyConfig()
    api: dict[str, Any] | None = None  # validated once its ${VAR}s are expanded (events.source_api)
    sync: dict[str, Any] | None = None
    fetch: dict[str, Any] | None = None


class _FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules_dir: str | None = None
    sources: dict[str, _SourceModel] = {}


@dataclass(frozen=True)
class Source:
    """One configured webhook endpoint, validated; its options are its connector's `Options` model."""

    name: str
    connector: str
    secrets: tuple[SecretStr, ...]
    options: Options = Options()
    forward: Forward | None = None
    retry: Retry = Retry()
    replay_guard: bool = False  # a body already received counts as a duplicate, whatever its delivery id
    oauth: OAuthConfig | None = None
    sla: SlaConfig | None = None  # events.targets: SLA targets and anomaly thresholds
    anomaly: AnomalyConfig = AnomalyConfig()
    api: SourceApi = SourceApi()  # events.source_api: its daily quota, and how syncs call it
    sync: dict[str, float] | None = None  # stream → interval (s) that beat keeps it fresh at
    fetch: FetchConfig | None = None  # event-driven fetches: which streams, which types, the window

    def secret_values(self) -> list[str]:
        """The secrets in the clear, for the connector that verifies with them (rotation: any may match)."""
        return [secret.get_secret_value() for secret in self.secrets]


def read_secrets_file(path: Path | None) -> dict[str, str]:
    """The secrets file, read by python-dotenv's parser (its rules for comments, quotes and `export`);
    values are literal (no `${VAR}` inside). A missing file is empty; a line the parser cannot read
    is a ConfigError naming the file and line, never the line itself (it may hold a secret)."""
    if path is None or not path.exists():
        return {}
    values = {}
    with path.open(encoding="utf-8") as stream:
        for binding in parse_stream(stream):
            if binding.error:
                raise ConfigError(
                    f"{path}:{binding.original.line}: not a KEY=VALUE line "
                    "(quote a value that holds spaces, quotes or ' #')"
                )
            if binding.key is not None and binding.value is not None:
                values[binding.key] = binding.value
    return values


def environment(secrets_file: Path | None) -> dict[str, str]:
    """What `${VAR}` reads: the environment, then the secrets file."""
    return {**read_secrets_file(secrets_file), **os.environ}


def expand(value: str, env: Mapping[str, str], where: str) -> str:
    """`${VAR}` replaced from `env`; an unset or empty one is a ConfigError naming `where`."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if not env.get(name):
            raise ConfigError(f"{where}: ${{{name}}} is not set in the environment or the secrets file")
        return env[name]

    return _VAR.sub(one, value)


def replay_guard_default(connector: ConnectorSpec) -> bool:
    """On for vendors that sign the body alone (no timestamp): a captured delivery resent under a
    fresh delivery id would otherwise be a new event. Timestamped vendors are covered by the window."""
    return connector.timestamped is False


def _expand_strings(table: Mapping[str, Any], env: Mapping[str, str], where: str) -> dict[str, Any]:
    """The table with ${VAR} expanded in its string values (other values are left to validation)."""
    return {k: expand(v, env, f"{where}.{k}") if isinstance(v, str) else v for k, v in table.items()}


def _forward(raw: Mapping[str, Any], env: Mapping[str, str], where: str) -> Forward:
    expanded = _expand_strings(raw, env, where)
    if isinstance(raw.get("headers"), Mapping):
        expanded["headers"] = _expand_strings(raw["headers"], env, f"{where}.headers")
    try:
        return Forward.model_validate(expanded)
    except ValidationError as exc:
        raise config_error(where, exc) from None


def _oauth(raw: Mapping[str, Any], connector: str, env: Mapping[str, str], where: str) -> OAuthConfig:
    expanded = _expand_strings(raw, env, where)
    for table in ("params", "authorize_params", "token_params"):
        if isinstance(raw.get(table), Mapping):
            expanded[table] = _expand_strings(raw[table], env, f"{where}.{table}")
    if load_box(env, where) is None:  # a bad key is a ConfigError too
        raise ConfigError(
            f"{where}: HOOKYARD_TOKEN_KEYS is not set; OAuth tokens are stored sealed with it "
            "(`hookyard connections new-key` makes a key)"
        )
    return load_oauth(expanded, connector, where)


def _read(path: Path) -> _FileModel:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: sources file not found (set --config or HOOKYARD_CONFIG)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        model = _FileModel.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path}: {loc}: {err['msg']}") from None
    return model


def rules_dir(path: Path) -> Path | None:
    """The rules folder the sources file names (`rules_dir`, relative to the file), or None."""
    model = _read(path)
    return None if model.rules_dir is None else path.parent / model.rules_dir


def load_sources(path: Path, secrets_file: Path | None = None) -> dict[str, Source]:
    """Read and validate the sources file; any problem is one ConfigError naming file, source, field."""
    model = _read(path)
    env = environment(secrets_file)
    sources = {}
    for name, src in model.sources.items():
        where = f"{path}: sources.{name}"
        if not NAME.match(name):
            raise ConfigError(
                f"{where}: a source name is lower-case letters, digits, '-' or '_' (it is part of the URL)"
            )
        if name == INTERNAL_SOURCE:
            raise ConfigError(f"{where}: the name {name!r} is reserved for Hookyard's own alert events")
        if src.connector not in registry.names():
            raise ConfigError(
                f"{where}.connector: unknown connector {src.connector!r}; "
                f"installed: {', '.join(registry.names())}"
            )
        try:
            connector = registry.get(src.connector)
        except ConfigError as exc:
            raise ConfigError(f"{where}.connector: {exc}") from None
        secrets = _secrets(src, connector, env, where)
        raw_api = _expand_strings(src.api or {}, env, f"{where}.api")
        api = load_api(raw_api, connector, f"{where}.api", oauth=src.oauth is not None)
        if api.access is None and (src.sync is not None or not connector.webhooks):
            missing = "a sync" if src.sync is not None else f"{connector.name} is pull-only: it"
            raise ConfigError(f"{where}.api: {missing} needs the vendor API's base_url and token")
        sources[name] = Source(
            name=name,
            connector=src.connector,
            secrets=tuple(SecretStr(s) for s in secrets),
            options=connector.load_options(
                _expand_strings(src.options, env, f"{where}.options"), f"{where}.options"
            ),
            forward=None if src.forward is None else _forward(src.forward, env, f"{where}.forward"),
            retry=src.retry,
            replay_guard=replay_guard_default(connector) if src.replay_guard is None else src.replay_guard,
            oauth=None if src.oauth is None else _oauth(src.oauth, src.connector, env, f"{where}.oauth"),
            sla=src.sla,
            anomaly=src.anomaly,
            api=api,
            sync=None if src.sync is None else load_sync(src.sync, connector, f"{where}.sync"),
            fetch=None if src.fetch is None else load_fetch(src.fetch, connector, api, f"{where}.fetch"),
        )
    return sources


def _secrets(
    src: _SourceModel, connector: ConnectorSpec, env: Mapping[str, str], where: str
) -> tuple[str, ...]:
    """The webhook secrets, expanded; a pull-only connector takes none (and verifies nothing)."""
    if not connector.webhooks:
        if src.secrets:
            raise ConfigError(f"{where}.secrets: {connector.name} sends no webhooks; remove them")
        return ()
    if src.secrets is None:
        raise ConfigError(f"{where}.secrets: Field required")
    secrets = tuple(expand(s, env, f"{where}.secrets") for s in src.secrets)
    if not any(secrets):
        raise ConfigError(
            f"{where}.secrets: no usable secret; a source without one would accept "
            "forgeries, so it is refused"
        )
    if not all(secrets):
        raise ConfigError(f"{where}.secrets: an empty secret is listed; remove it")
    return secrets
