"""Health maths, pure: quantiles, counters across restarts, Poisson tails, debouncing and the score."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from events.health.debounce import AlertState, Debounce, Status, Transition, step
from events.health.score import ScorePolicy, SourceWindow, health_score
from events.health.stats import (
    CounterSample,
    increase,
    increases_by_bucket,
    poisson_cdf,
    poisson_sf,
    quantile,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "values, q, expected",
    [
        ([], 0.95, None),
        ([7.0], 0.95, 7.0),
        ([float(v) for v in range(1, 101)], 0.95, 95.0),
        ([float(v) for v in range(1, 101)], 0.5, 50.0),
        ([3.0, 1.0, 2.0], 1.0, 3.0),
    ],
)
def test_quantile_is_nearest_rank(values: list[float], q: float, expected: float | None) -> None:
    """Nearest rank: an observed value, never an interpolation; None for no values."""
    assert quantile(values, q) == expected


def samples(*values: float) -> list[CounterSample]:
    return [CounterSample(ago(60 * (len(values) - i)), v) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    "values, grew",
    [
        ((), 0.0),
        ((5,), 0.0),
        ((0, 3, 8), 8.0),
        ((10, 12, 3, 7), 2 + 3 + 4),  # restarted between 12 and 3: the 3 is new growth
        ((10, 12, 0, 0, 4), 2 + 0 + 0 + 4),  # restarted and idle for a while
        ((7, 7, 7), 0.0),
    ],
)
def test_counter_increase_survives_restarts(values: tuple[float, ...], grew: float) -> None:
    """A drop is a restart from zero, never negative growth."""
    assert increase(samples(*values)) == grew


def test_increases_by_bucket_put_each_step_in_the_bucket_of_its_later_sample() -> None:
    """Per-minute growth of a counter that restarted in minute 3."""
    start = ago(300)
    series = [CounterSample(start + timedelta(minutes=m), v) for m, v in enumerate([0, 4, 9, 2, 5, 5])]
    assert increases_by_bucket(series, start, 60, 5) == [4.0, 5.0, 2.0, 3.0, 0.0]


@pytest.mark.parametrize(
    "k, lam, cdf",
    [
        (0, 10.0, math.exp(-10)),
        (10, 10.0, 0.5830397501929871),
        (-1, 3.0, 0.0),
        (5, 0.0, 1.0),
        (900, 1000.0, 0.00069776732779618),  # a large mean does not underflow to 0
    ],
)
def test_poisson_tails(k: float, lam: float, cdf: float) -> None:
    """P(X ≤ k) and its complement P(X ≥ k + 1) against values computed independently."""
    assert poisson_cdf(k, lam) == pytest.approx(cdf, rel=1e-9, abs=1e-15)
    assert poisson_sf(k + 1, lam) == pytest.approx(1 - cdf, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    "evaluations, transitions",
    [
        ("", []),
        ("bbb", ["breach@2"]),
        ("bb.b", ["breach@3"]),  # cannot tell (.) neither breaks nor extends a streak
        ("bbgbbgbb", []),  # flapping never alerts
        ("bbbgggbbb", ["breach@2", "recovery@5", "breach@8"]),
        ("bbbbbbbbbgg.g", ["breach@2", "recovery@12"]),  # one alert for a long outage
        ("bbbgbgbgbggg", ["breach@2", "recovery@11"]),  # a shaky recovery recovers once
        ("...", []),
    ],
)
def test_debounce_raises_one_breach_and_one_recovery(evaluations: str, transitions: list[str]) -> None:
    """b = bad, g = good, . = cannot tell; three in a row change the status, and only then."""
    state, found = AlertState(), []
    for i, mark in enumerate(evaluations):
        bad = {"b": True, "g": False, ".": None}[mark]
        state, transition = step(state, bad, Debounce(breach_after=3, recover_after=3), ago(-i))
        if transition is not None:
            found.append(f"{transition}@{i}")
    assert found == transitions


def test_debounce_state_records_when_it_changed() -> None:
    """The state says since when a source is breached (what 'open for how long' is computed from)."""
    state, transition = step(AlertState(), True, Debounce(breach_after=1, recover_after=1), NOW)
    assert (state, transition) == (AlertState(Status.BREACHED, 0, NOW), Transition.BREACH)
    with pytest.raises(ValueError):
        Debounce(breach_after=0)


FIVE = ScorePolicy(latency_target_s=5.0, max_silence_s=1800.0, sync_interval_s=600.0)
GOOD = dict(attempts_ok=100, events=100, p95_processing_s=0.5, last_event_at=ago(60), last_sync_at=ago(60))


@pytest.mark.parametrize(
    "window, policy, score, worst",
    [
        # empty history: nothing to judge is unknown, not healthy
        (SourceWindow(), ScorePolicy(), None, None),
        (SourceWindow(last_event_at=ago(99999)), ScorePolicy(), None, None),
        (SourceWindow(**GOOD), FIVE, 100, None),
        # a new source whose first attempt failed (and will be retried): the prior softens it
        (SourceWindow(attempts_failed=1, events=1), ScorePolicy(), 77, "success"),
        (SourceWindow(attempts_failed=50, events=50, dead_letters=50), ScorePolicy(), 0, "success"),
        # p95 at twice its target, all else perfect: the figure quoted in the docs
        (SourceWindow(**{**GOOD, "p95_processing_s": 10.0}), FIVE, 88, "latency"),
        (SourceWindow(attempts_ok=100, events=100, p95_processing_s=10.0), ScorePolicy(), 84, "latency"),
        # silence: 1 h with 30 min allowed is half good; 2 h (four times) is broken
        (SourceWindow(**{**GOOD, "last_event_at": ago(3600)}), FIVE, 88, "silence"),
        (SourceWindow(**{**GOOD, "last_event_at": ago(7200)}), FIVE, 0, "silence"),
        # a sync 30 min old where it runs every 10 min (20 min allowed)
        (SourceWindow(**{**GOOD, "last_sync_at": ago(1800)}), FIVE, 97, "sync"),
        # 5 dead letters in 50 events
        (
            SourceWindow(attempts_ok=45, attempts_failed=5, events=50, dead_letters=5),
            ScorePolicy(),
            66,
            "dead_letters",
        ),
    ],
)
def test_health_score_table(
    window: SourceWindow, policy: ScorePolicy, score: int | None, worst: str | None
) -> None:
    """The score and the component that pulls it down, for the cases docs/operations.md describes."""
    health = health_score(window, NOW, policy)
    assert (health.score, health.worst) == (score, worst)
    assert all(0.0 <= g <= 1.0 for g in health.components.values())


def test_score_from_counters_that_restarted_matches_the_true_counts() -> None:
    """Dead letters counted by a worker that restarted mid-window: the increase is the true count, and
    the score is the one the true count gives (a naive last − first would count 2, not 5)."""
    dead = increase(samples(0, 3, 1, 2))
    assert dead == 5.0
    from_counters = SourceWindow(attempts_ok=45, attempts_failed=5, events=50, dead_letters=dead)
    truth = SourceWindow(attempts_ok=45, attempts_failed=5, events=50, dead_letters=5)
    naive = SourceWindow(attempts_ok=45, attempts_failed=5, events=50, dead_letters=2 - 0)
    assert health_score(from_counters, NOW).score == health_score(truth, NOW).score
    assert health_score(naive, NOW).score != health_score(truth, NOW).score
