"""Find connectors: built-in ones and any installed package's, through the entry-point group.

Each is loaded once and checked then: `get` answers the typed `ConnectorSpec`, never the raw object.
`get` also knows the internal `hookyard` connector (Hookyard's own alert events); `names` does not list
it, so no configured source can use it.
"""

from __future__ import annotations

from connectors import internal
from connectors.base import ConnectorSpec
from schemas.errors import ConfigError
from schemas.plugins import Plugins

GROUP = "hookyard.connectors"


def checked_spec(name: str, plugin: object, where: str) -> ConnectorSpec:
    """The spec of a loaded connector, refused unless it answers to the name it is registered under."""
    spec = ConnectorSpec.of(plugin)
    if spec.name != name:
        raise ConfigError(f"connector {name!r} from {where} calls itself {spec.name!r}; make them equal")
    return spec


_PLUGINS = Plugins[ConnectorSpec](GROUP, "connector", checked_spec)
names = _PLUGINS.names
origin = _PLUGINS.origin


def get(name: str) -> ConnectorSpec:
    """The connector called `name` (an installed one, or the internal `hookyard`)."""
    return internal.SPEC if name == internal.INTERNAL_SOURCE else _PLUGINS.get(name)
