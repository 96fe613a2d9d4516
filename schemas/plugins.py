"""Plug-ins found through an entry-point group: connectors, action types, whatever comes next.

A plug-in is an object an installed package names under a group in its metadata, e.g.

    [project.entry-points."hookyard.connectors"]
    acme = "acme_hooks"

`Plugins(group, kind, make)` lists them, says which distribution provides one, and loads one once:
`make(name, loaded object, where)` turns it into what the caller uses and refuses an unsound one with a
ConfigError; `implementing(Protocol)` is the `make` that only checks a runtime-checkable protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar, cast

from schemas.errors import ConfigError

T = TypeVar("T")

Make = Callable[[str, object, str], T]  # (name, the loaded object, where it came from) → the plug-in


def implementing(protocol: type, kind: str) -> Make[T]:
    """A `make` that takes the object as it is, once it implements `protocol`."""

    def make(name: str, plugin: object, where: str) -> T:
        if not isinstance(plugin, protocol):
            raise ConfigError(
                f"{kind} {name!r} from {where} does not implement the {protocol.__name__} protocol"
            )
        return cast(T, plugin)

    return make


class Plugins(Generic[T]):
    """The plug-ins of one entry-point group, each made (and checked) by `make` when first loaded."""

    def __init__(self, group: str, kind: str, make: Make[T]) -> None:
        self.group = group
        self.kind = kind
        self.make = make
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
        return self.make(name, ep.load(), ep.value)
