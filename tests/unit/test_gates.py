"""Throttle windows, failure steps and gate settings: pure tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rules.gates import admit
from rules.loader import load_rules
from schemas.errors import ConfigError, PermanentError, Throttled, TransientError
from schemas.retry import RetryPolicy
from tests.unit.rules_kit import ENV, rule_text, write
from workers.leases import after_failure

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fired", "now", "per_s", "max_fired", "kept", "allowed"),
    [
        ([], 100.0, 60.0, 1, [100.0], True),  # nothing in the window: fires
        ([50.0], 100.0, 60.0, 1, [50.0], False),  # one 50 s ago, per 60 s, max 1: held back
        ([40.0], 100.0, 60.0, 1, [100.0], True),  # exactly `per` ago: out of the window
        ([50.0, 90.0], 100.0, 60.0, 3, [50.0, 90.0, 100.0], True),  # 2 of 3 used
        ([41.0, 50.0, 90.0], 100.0, 60.0, 3, [41.0, 50.0, 90.0], False),  # all 3 inside: held back
        ([10.0, 20.0, 99.0], 100.0, 60.0, 2, [99.0, 100.0], True),  # old ones slide out
    ],
)
def test_admit_is_a_sliding_window(
    fired: list[float], now: float, per_s: float, max_fired: int, kept: list[float], allowed: bool
) -> None:
    """At most max firings in any `per` seconds; a held-back match is not a firing."""
    assert admit(fired, now, per_s, max_fired) == (kept, allowed)


def test_a_long_run_never_exceeds_the_limit_in_any_window() -> None:
    """Matches every 7 s for an hour, max 5 per 60 s: no 60-second span holds more than 5 firings."""
    fired: list[float] = []
    history: list[float] = []
    for t in range(0, 3600, 7):
        fired, ok = admit(fired, float(t), 60.0, 5)
        if ok:
            history.append(float(t))
    assert all(sum(1 for x in history if s <= x < s + 60) <= 5 for s in history)
    assert len(history) >= 3600 // 60 * 5 * 0.9


@pytest.mark.parametrize(
    ("error", "tried", "due_s"),
    [
        (TransientError("503"), 1, 2.0),  # backoff: base 2 × rand 1
        (TransientError("503"), 3, 8.0),
        (Throttled("429", retry_after_s=17), 1, 17.0),  # the remote's wait wins
        (TransientError("503"), 4, None),  # attempts used up: dead
        (PermanentError("400"), 1, None),  # permanent: dead at once
    ],
)
def test_after_failure(error: Exception, tried: int, due_s: float | None) -> None:
    """A transient failure waits for the remote's time or the backoff while attempts remain."""
    step = after_failure(error, RetryPolicy(max_attempts=4, base_s=2.0, cap_s=60.0), tried, NOW, lambda: 1.0)
    assert step.due == (None if due_s is None else NOW + timedelta(seconds=due_s))
    assert step.message.startswith(type(error).__name__)


def test_a_rule_takes_a_throttle_or_a_debounce_not_both(tmp_path: Path) -> None:
    """Both in one file is a load error naming the rule."""
    text = rule_text("both") + '[throttle]\nper = "1m"\n[debounce]\nwait = "1m"\n'
    write(tmp_path, "both.toml", text)
    with pytest.raises(ConfigError, match="rule both: a rule takes a throttle or a debounce, not both"):
        load_rules(tmp_path, env=ENV)
