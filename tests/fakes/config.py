"""The fakes' configuration (defaults overridden by a JSON object, checked when loaded) and clock."""

from __future__ import annotations

import time
from typing import Any

BASE_DEFAULTS: dict[str, Any] = {
    "seed": 1,
    "clock": None,  # unix seconds: freeze the fake's clock there (move it with POST /_fake/clock)
    "span_days": 7,  # seeded records were created and changed within this many days before now
    "tokens": [],
    "counts": {},
}


class ConfigError(ValueError):
    """A fake's configuration names an unknown setting or gives one the wrong type."""


def merge_config(defaults: dict[str, Any], given: dict[str, Any], path: str = "") -> dict[str, Any]:
    """`given` over `defaults`; a non-empty dict default is a schema (its keys only)."""
    merged = dict(defaults)
    for name, value in given.items():
        where = f"{path}{name}"
        if name not in defaults:
            raise ConfigError(f"{where}: unknown setting")
        default = defaults[name]
        if isinstance(default, dict) and default and isinstance(value, dict):
            merged[name] = merge_config(default, value, f"{where}.")
            continue
        numeric = isinstance(default, int | float) and not isinstance(default, bool)
        fits = (
            default is None
            or (numeric and isinstance(value, int | float) and not isinstance(value, bool))
            or type(value) is type(default)
        )
        if not fits:
            raise ConfigError(f"{where}: expected {type(default).__name__}, got {value!r}")
        merged[name] = value
    return merged


class Clock:
    """Wall time, or frozen at a configured instant; both can be moved forward."""

    def __init__(self, frozen_at: float | None) -> None:
        self.frozen_at = frozen_at
        self.offset_s = 0.0

    def now(self) -> float:
        return (time.time() if self.frozen_at is None else self.frozen_at) + self.offset_s

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds
