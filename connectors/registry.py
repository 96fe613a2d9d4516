"""Find connectors: built-in ones and any installed package's, through the entry-point group.

Each is loaded once and checked then: `get` answers the typed `ConnectorSpec`, never the raw object.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from connectors.base import ConnectorSpec
from schemas.errors import ConfigError

GROUP = "hookyard.connectors"


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def names() -> list[str]:
    return sorted(_entry_points())


def origin(name: str) -> str:
    """The distribution that provides a connector (``hookyard`` for the built-in ones)."""
    ep = _entry_points()[name]
    return ep.dist.name if ep.dist is not None else "?"


@cache
def get(name: str) -> ConnectorSpec:
    """The connector a source's `connector = "<name>"` means; ConfigError when it is absent or unsound."""
    ep = _entry_points().get(name)
    if ep is None:
        raise ConfigError(f"unknown connector {name!r}; installed: {', '.join(names()) or 'none'}")
    spec = ConnectorSpec.of(ep.load())
    if spec.name != name:
        raise ConfigError(f"connector {name!r} from {ep.value} calls itself {spec.name!r}; make them equal")
    return spec
