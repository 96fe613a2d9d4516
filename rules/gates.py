"""Throttle and debounce, as pure decisions over a rule's gate state.

A rule's `[throttle]` lets at most `max` firings through in any `per` seconds for each value of
its key: a sliding window over the times of the firings it let through (exact, not fixed buckets).
A match it holds back is recorded as `throttled` and is not a firing.
A `[debounce]` fires once, `wait` seconds after the last match of a key: each new match replaces
the one still waiting.

The worker keeps this state in the database (`rule_gates`, locked in the transaction that records
the match); `hookyard rules simulate` runs the same function in memory over stored events.
"""

from __future__ import annotations

from collections.abc import Sequence

from rules.ruleset import Rule


def admit(fired: Sequence[float], now: float, per_s: float, max_fired: int) -> tuple[list[float], bool]:
    """The firings still inside the window after this match (unix times), and whether it fires."""
    recent = [t for t in fired if t > now - per_s]
    if len(recent) >= max_fired:
        return recent, False
    return [*recent, now], True


class Gates:
    """Throttle state in memory, for simulations."""

    def __init__(self) -> None:
        self._fired: dict[tuple[str, str], list[float]] = {}

    def admit(self, rule: Rule, key: str, now: float) -> bool:
        if rule.throttle is None:
            return True
        fired, allowed = admit(
            self._fired.get((rule.name, key), ()), now, rule.throttle.per_s, rule.throttle.max
        )
        self._fired[(rule.name, key)] = fired
        return allowed
