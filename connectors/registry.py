"""Find connectors: built-in ones and any installed package's, through the entry-point group."""

from __future__ import annotations

from connectors.base import Connector
from schemas.plugins import Plugins

GROUP = "hookyard.connectors"

_PLUGINS = Plugins[Connector](GROUP, "connector", Connector)
names = _PLUGINS.names
origin = _PLUGINS.origin
get = _PLUGINS.get
