"""Anomaly detection, pure: an hour-of-week baseline, empty and young histories, counters that restart,
a daylight-saving week without false alarms, and one synthetic day with one outage that raises exactly
one alert and one recovery."""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from events.health.anomaly import (
    AnomalyPolicy,
    Baseline,
    Counts,
    Kind,
    Monitor,
    Slot,
    assess,
    evaluate,
    expected_events,
    learn,
    learn_hour,
)
from events.health.debounce import Transition
from events.health.stats import CounterSample, increase

POLICY = AnomalyPolicy()
STEP = timedelta(minutes=5)
HOUR = timedelta(hours=1)


def shop_rate(local: datetime) -> float:
    """Events an hour of a shop that follows the wall clock: quiet nights, a busy day, quieter Sundays."""
    hour = local.hour + local.minute / 60
    daytime = 5 + 115 * max(0.0, math.sin(math.pi * (hour - 7) / 15)) if 7 <= hour < 22 else 5
    return daytime * (0.5 if local.weekday() == 6 else 1.0)


def office_rate(local: datetime) -> float:
    """A source busy only in office hours (09:00–18:00, Monday to Friday, wall clock) and silent
    otherwise: a model on UTC hours would expect it an hour off after a daylight-saving change."""
    return 100.0 if local.weekday() < 5 and 9 <= local.hour < 18 else 0.0


def poisson(rng: random.Random, lam: float) -> int:
    """Knuth's sampler (the means here are small)."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def simulate(
    monitor: Monitor,
    start: datetime,
    end: datetime,
    tz: str,
    rng: random.Random,
    outage: tuple[datetime, datetime] | None = None,
    rate: Callable[[datetime], float] = shop_rate,
) -> tuple[Monitor, list[tuple[Kind, Transition, datetime]]]:
    """Traffic in 5-minute steps from `start` to `end`: each whole hour is learned, and after each step
    the last 30 minutes are evaluated. Returns the monitor and every transition."""
    zone, steps, hour = ZoneInfo(tz), deque(maxlen=6), Counts()
    found = []
    at = start
    while at < end:
        at += STEP
        lam = rate((at - STEP).astimezone(zone)) / 12
        events = 0 if outage and outage[0] <= at - STEP < outage[1] else poisson(rng, lam)
        failures = sum(rng.random() < 0.01 for _ in range(events))
        step_counts = Counts(events, events, failures)
        steps.append(step_counts)
        hour = Counts(hour.events + events, hour.attempts + events, hour.failures + failures)
        if at.minute == 0:
            monitor = learn(monitor, at - HOUR, hour, POLICY)
            hour = Counts()
        window = Counts(*(sum(getattr(s, f) for s in steps) for f in ("events", "attempts", "failures")))
        monitor, raised = evaluate(monitor, at, window, POLICY)
        found += [(a.kind, a.transition, a.at) for a in raised]
    return monitor, found


def trained(
    tz: str, until: datetime, weeks: int, seed: int, rate: Callable[[datetime], float] = shop_rate
) -> Monitor:
    """A monitor that watched `weeks` weeks of normal traffic up to `until` (a whole hour, UTC)."""
    start = until - timedelta(weeks=weeks)
    monitor, alerts = simulate(Monitor(Baseline(tz=tz)), start, until, tz, random.Random(seed), rate=rate)
    assert alerts == [], "three normal weeks must not alert"
    return monitor


def test_empty_history_judges_nothing_and_never_alerts() -> None:
    """No baseline: rate findings are unknown (None), so a silent new source raises nothing."""
    now = datetime(2026, 6, 3, 12, tzinfo=UTC)
    assessment = assess(Baseline(), now, Counts(), POLICY)
    assert assessment.expected is None
    assert assessment.findings == {Kind.STOPPED: None, Kind.SURGE: None, Kind.FAILURES: None}
    monitor = Monitor()
    for minute in range(0, 600, 5):
        monitor, raised = evaluate(monitor, now + timedelta(minutes=minute), Counts(), POLICY)
        assert raised == []


def test_a_new_source_is_judged_by_hour_of_day_after_three_days_and_by_hour_of_week_after_two_weeks() -> None:
    """Days 1–2: unknown; from day 3 the hour-of-day slots (weekdays and weekends apart); from the
    second week the hour-of-week slot, so a Saturday is expected to be a Saturday."""
    baseline, start = Baseline(), datetime(2026, 6, 1, tzinfo=UTC)  # a Monday
    noon = timedelta(hours=12)
    for day in range(15):
        for hour in range(24):
            at = start + timedelta(days=day, hours=hour)
            baseline = learn_hour(baseline, at, Counts(events=100.0 if at.weekday() < 5 else 10.0), POLICY)
        if day < 2:
            assert (
                expected_events(
                    baseline,
                    start + timedelta(days=day) + noon,
                    start + timedelta(days=day, hours=13),
                    POLICY,
                )
                is None
            )
    saturday_noon = start + timedelta(days=12) + noon
    weekly = expected_events(baseline, saturday_noon, saturday_noon + HOUR, POLICY)
    assert weekly is not None and weekly[0] == pytest.approx(
        10.0
    )  # Saturdays, not the weekday-heavy hour of day
    young = Baseline()
    for hour in range(3 * 24):
        young = learn_hour(young, start + timedelta(hours=hour), Counts(events=60.0), POLICY)
    assert expected_events(
        young, start + noon, start + noon + timedelta(minutes=30), POLICY
    ) == pytest.approx((30.0, 1.0))


def test_expected_events_split_a_window_across_hours() -> None:
    """A window from 12:45 to 13:15 takes a quarter hour from each slot."""
    week = [Slot(mean=0.0, var=1.0, n=5)] * 168
    week[2 * 24 + 12], week[2 * 24 + 13] = Slot(40.0, 40.0, 5), Slot(80.0, 80.0, 5)
    baseline = Baseline(week=tuple(week))
    wednesday = datetime(2026, 6, 3, tzinfo=UTC)
    found = expected_events(
        baseline,
        wednesday + timedelta(hours=12, minutes=45),
        wednesday + timedelta(hours=13, minutes=15),
        POLICY,
    )
    assert found == pytest.approx((10.0 + 20.0, 1.0))


@pytest.mark.parametrize(
    "usual, window, finding",
    [
        (0.02, Counts(events=100, attempts=100, failures=30), True),
        (0.02, Counts(events=100, attempts=100, failures=5), False),
        (0.02, Counts(events=100, attempts=100, failures=15), None),  # between the two thresholds: hold
        (0.02, Counts(events=10, attempts=10, failures=10), None),  # too few attempts to tell
        (None, Counts(events=50, attempts=50, failures=12), True),  # no history: the usual share is 0
        (0.5, Counts(events=50, attempts=50, failures=27), False),  # a source that always fails half
    ],
)
def test_failure_rate_jump(usual: float | None, window: Counts, finding: bool | None) -> None:
    """Anomalous at the usual share + 0.2, normal below + 0.1, unknown in between or on little data."""
    now = datetime(2026, 6, 3, 12, tzinfo=UTC)
    assert assess(Baseline(failure_share=usual), now, window, POLICY).findings[Kind.FAILURES] is finding


def test_counter_restarts_do_not_look_like_an_outage() -> None:
    """Window counts computed from a counter that restarted (1000 → 7) with `increase` equal the true
    count, so the source is judged normal; the naive difference is negative and would read 'stopped'."""
    week = tuple(Slot(mean=120.0, var=120.0, n=5) for _ in range(168))
    baseline, now = Baseline(week=week), datetime(2026, 6, 3, 12, 30, tzinfo=UTC)
    readings = [
        CounterSample(now - timedelta(minutes=30 - 5 * i), v)
        for i, v in enumerate([940, 950, 1000, 7, 19, 29, 59])
    ]
    true_count = increase(readings)
    assert true_count == 10 + 50 + 7 + 12 + 10 + 30
    assert assess(baseline, now, Counts(events=true_count), POLICY).findings[Kind.STOPPED] is False
    naive = readings[-1].value - readings[0].value
    assert assess(baseline, now, Counts(events=naive), POLICY).findings[Kind.STOPPED] is True


@pytest.mark.parametrize("rate", [shop_rate, office_rate])
def test_a_daylight_saving_week_raises_no_alert(rate: Callable[[datetime], float]) -> None:
    """Traffic that follows New York's wall clock through the weeks around the spring change (Sunday
    8 March 2026): the local hour-of-week baseline stays aligned, so the week after passes without a
    single alert (on UTC hours, the office source would 'stop' an hour early every evening)."""
    tz = "America/New_York"
    change = datetime(2026, 3, 9, 4, tzinfo=UTC)  # Monday 00:00 in New York, the day after the change
    monitor = trained(tz, change - timedelta(days=6), weeks=3, seed=7, rate=rate)  # includes the change
    _, alerts = simulate(
        monitor, change - timedelta(days=6), change + timedelta(weeks=1), tz, random.Random(8), rate=rate
    )
    assert alerts == []


def test_one_day_with_one_outage_raises_exactly_one_alert_and_one_recovery() -> None:
    """A Wednesday in Berlin with no events from 13:00 to 14:00: one 'stopped' alert during the outage,
    one recovery shortly after it, and nothing else all day (nights, ramps and noise included)."""
    tz, berlin = "Europe/Berlin", ZoneInfo("Europe/Berlin")
    day = datetime(2026, 6, 3, tzinfo=berlin).astimezone(UTC)
    outage = (datetime(2026, 6, 3, 13, tzinfo=berlin), datetime(2026, 6, 3, 14, tzinfo=berlin))
    monitor = trained(tz, day, weeks=3, seed=11)
    _, alerts = simulate(monitor, day, day + timedelta(days=1), tz, random.Random(12), outage=outage)
    assert [(kind, transition) for kind, transition, _ in alerts] == [
        (Kind.STOPPED, Transition.BREACH),
        (Kind.STOPPED, Transition.RECOVERY),
    ]
    (_, _, raised_at), (_, _, recovered_at) = alerts
    assert outage[0] < raised_at <= outage[0] + timedelta(minutes=45)
    assert outage[1] < recovered_at <= outage[1] + timedelta(minutes=45)


def test_an_outage_is_not_learned_as_the_new_normal() -> None:
    """Hours with an open alert are skipped, so the slot of the outage hour keeps its usual mean."""
    tz, berlin = "Europe/Berlin", ZoneInfo("Europe/Berlin")
    day = datetime(2026, 6, 3, tzinfo=berlin).astimezone(UTC)
    outage = (datetime(2026, 6, 3, 13, tzinfo=berlin), datetime(2026, 6, 3, 15, tzinfo=berlin))
    monitor = trained(tz, day, weeks=3, seed=11)
    slot = 2 * 24 + 14  # Wednesday 14:00–15:00, entirely inside the outage
    before = monitor.baseline.week[slot]
    after, _ = simulate(monitor, day, day + timedelta(days=1), tz, random.Random(12), outage=outage)
    assert before is not None and after.baseline.week[slot] == before
