"""The sources file: which webhooks are accepted, with which connector and secrets.

    [sources.shop]                       # URL: POST /webhooks/shop
    connector = "shopify"
    secrets = ["${SHOPIFY_WEBHOOK_SECRET}"]   # a list: rotation; ${VAR} reads the environment
    options = { tolerance_s = 300 }      # connector-specific, optional

`${VAR}` reads the environment, then the secrets file (KEY=VALUE lines, kept outside the repo).
A top-level `rules_dir = "rules"` names the folder of automation rules, relative to this file.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors import registry
from schemas.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class Forward(BaseModel):
    """Deliver each processed event to a downstream URL (with an Idempotency-Key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str
    headers: dict[str, str] = {}
    timeout_s: float = 10.0


class Retry(BaseModel):
    """Overrides of the connector's retry policy for this source."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    base_s: float | None = Field(default=None, gt=0)
    cap_s: float | None = Field(default=None, gt=0)


class _SourceModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connector: str
    secrets: list[str]
    options: dict[str, Any] = {}
    forward: Forward | None = None
    retry: Retry = Retry()
    replay_guard: bool | None = None


class _FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules_dir: str | None = None
    sources: dict[str, _SourceModel] = {}


@dataclass(frozen=True)
class Source:
    name: str
    connector: str
    secrets: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    forward: Forward | None = None
    retry: Retry = Retry()
    replay_guard: bool = False  # a body already received counts as a duplicate, whatever its delivery id


def read_secrets_file(path: Path | None) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments ignored. A missing file is empty."""
    if path is None or not path.exists():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
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


def replay_guard_default(connector: str) -> bool:
    """On for vendors that sign the body alone (no timestamp): a captured delivery resent under a
    fresh delivery id would otherwise be a new event. Timestamped vendors are covered by the window."""
    return getattr(registry.get(connector), "timestamped", None) is False


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
        if src.connector not in registry.names():
            raise ConfigError(
                f"{where}.connector: unknown connector {src.connector!r}; "
                f"installed: {', '.join(registry.names())}"
            )
        secrets = tuple(expand(s, env, f"{where}.secrets") for s in src.secrets)
        if not any(secrets):
            raise ConfigError(
                f"{where}.secrets: no usable secret; a source without one would accept "
                "forgeries, so it is refused"
            )
        if not all(secrets):
            raise ConfigError(f"{where}.secrets: an empty secret is listed; remove it")
        options = {
            k: expand(v, env, f"{where}.options.{k}") if isinstance(v, str) else v
            for k, v in src.options.items()
        }
        forward = src.forward and src.forward.model_copy(
            update={
                "url": expand(src.forward.url, env, f"{where}.forward.url"),
                "headers": {
                    k: expand(v, env, f"{where}.forward.headers.{k}") for k, v in src.forward.headers.items()
                },
            }
        )
        sources[name] = Source(
            name=name,
            connector=src.connector,
            secrets=secrets,
            options=options,
            forward=forward,
            retry=src.retry,
            replay_guard=replay_guard_default(src.connector)
            if src.replay_guard is None
            else src.replay_guard,
        )
    return sources
