"""Plug-ins found through an entry-point group: connectors, action types, whatever comes next.

A plug-in is an object an installed package names under a group in its metadata, e.g.

    [project.entry-points."hookyard.connectors"]
    acme = "acme_hooks"

`Plugins[P](group, kind, P)` lists them, says which distribution provides one, and loads one
(once), refusing a missing name or an object that does not implement the protocol with a ConfigError.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar, cast

from schemas.errors import ConfigError

T = TypeVar("T")


class Plugins(Generic[T]):
    """The plug-ins of one entry-point group that implement `protocol` (a runtime-checkable Protocol)."""

    def __init__(self, group: str, kind: str, protocol: type) -> None:
        self.group = group
        self.kind = kind
        self.protocol = protocol
        self.get = cache(self._load)

    def _entry_points(self) -> dict[str, EntryPoint]:
        return {ep.name: ep for ep in entry_points(group=self.group)}

    def names(self) -> list[str]:
        return sorted(self._entry_points())

    def origin(self, name: str) -> str:
        """The distribution that provides a plug-in (``hookyard`` for the built-in ones)."""
        ep = self._entry_points()[name]
        return ep.dist.name if ep.dist is not None else "?"

    def _load(self, name: str) -> T:
        ep = self._entry_points().get(name)
        if ep is None:
            raise ConfigError(f"unknown {self.kind} {name!r}; installed: {', '.join(self.names()) or 'none'}")
        plugin = ep.load()
        if not isinstance(plugin, self.protocol):
            protocol = self.protocol.__name__
            raise ConfigError(
                f"{self.kind} {name!r} from {ep.value} does not implement the {protocol} protocol"
            )
        return cast(T, plugin)
