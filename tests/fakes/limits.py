"""Rate limiters of the fakes, and the gate that counts clients who do not wait when told to.

Every limiter answers `wait_s(key, now, cost)`: 0 when the request fits now, otherwise how long
until it would. The gate asks every limiter of a request first and takes from all of them only
when all admit it, so a refused request consumes nothing. A refusal blocks the limiter's key
until the wait is over; a request that arrives for a blocked key is a *violation*: the client
was told (or could have known) to wait and did not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


class Limiter(Protocol):
    name: str

    def wait_s(self, key: str, now: float, cost: float) -> float:
        """0 when `cost` fits now, else the seconds until it would."""

    def take(self, key: str, now: float, cost: float) -> None:
        """Consume `cost` (only called after wait_s said 0)."""


@dataclass
class FixedWindow:
    """`limit` units per window of `window_s` seconds, windows aligned to the epoch (Klaviyo, Zendesk,
    rack-attack and GA4 quotas count this way)."""

    name: str
    limit: float
    window_s: float
    used_by_key: dict[str, tuple[int, float]] = field(default_factory=dict)

    def slot(self, now: float) -> int:
        return math.floor(now / self.window_s)

    def used(self, key: str, now: float) -> float:
        slot, used = self.used_by_key.get(key, (0, 0.0))
        return used if slot == self.slot(now) else 0.0

    def remaining(self, key: str, now: float) -> float:
        return max(0.0, self.limit - self.used(key, now))

    def reset_in(self, now: float) -> float:
        return (self.slot(now) + 1) * self.window_s - now

    def wait_s(self, key: str, now: float, cost: float) -> float:
        return 0.0 if self.used(key, now) + cost <= self.limit else self.reset_in(now)

    def take(self, key: str, now: float, cost: float) -> None:
        self.used_by_key[key] = (self.slot(now), self.used(key, now) + cost)


@dataclass
class LeakyBucket:
    """A bucket of `capacity` points refilled at `restore_per_s` (Shopify's cost points)."""

    name: str
    capacity: float
    restore_per_s: float
    levels: dict[str, tuple[float, float]] = field(default_factory=dict)

    def available(self, key: str, now: float) -> float:
        level, at = self.levels.get(key, (self.capacity, now))
        return min(self.capacity, level + max(0.0, now - at) * self.restore_per_s)

    def wait_s(self, key: str, now: float, cost: float) -> float:
        missing = cost - self.available(key, now)
        return 0.0 if missing <= 1e-3 else missing / self.restore_per_s  # float dust (unix-time precision)

    def take(self, key: str, now: float, cost: float) -> None:
        self.levels[key] = (self.available(key, now) - cost, now)

    def give(self, key: str, now: float, points: float) -> None:
        """Refund points (requested minus actual cost)."""
        self.levels[key] = (min(self.capacity, self.available(key, now) + points), now)


Check = tuple[Limiter, str, float]  # (limiter, key, cost)
Checks = Sequence[Check]


@dataclass
class Verdict:
    wait_s: float  # 0 = admitted
    violation: bool
    refused_by: str = ""  # the name of the limiter that refused, when one did


@dataclass
class Gate:
    blocked_until: dict[str, float] = field(default_factory=dict)

    def admit(self, now: float, checks: Checks) -> Verdict:
        early = [self.blocked_until.get(f"{lim.name}:{key}", 0.0) - now for lim, key, _ in checks]
        violation = any(gap > 1e-3 for gap in early)  # a millisecond of slack for float time
        waits = [(lim.wait_s(key, now, cost), lim, key) for lim, key, cost in checks]
        refused = [(wait, lim, key) for wait, lim, key in waits if wait > 0]
        if not refused:
            for lim, key, cost in checks:
                lim.take(key, now, cost)
            return Verdict(0.0, violation)
        for wait, lim, key in refused:
            slot = f"{lim.name}:{key}"
            self.blocked_until[slot] = max(self.blocked_until.get(slot, 0.0), now + wait)
        wait, lim, _ = max(refused, key=lambda item: item[0])
        return Verdict(wait, violation, lim.name)


def retry_after(wait_s: float) -> str:
    """A Retry-After value in whole seconds that never undershoots the wait."""
    return str(max(1, math.ceil(wait_s)))
