"""SLA targets, pure: business hours in a time zone (daylight saving included), latency quantiles, and
one synthetic day with one gap that raises exactly one breach and one recovery."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from events.health.debounce import Debounce, Transition
from events.health.sla import BusinessHours, GapTarget, LatencyTarget, SlaTracker, business_seconds

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = BusinessHours(tz="Europe/Berlin")
EVERY_DAY = BusinessHours(tz="Europe/Berlin", days=frozenset(range(7)))
NIGHTS = BusinessHours(tz="Europe/Berlin", days=frozenset(range(7)), start=time(22), end=time(6))


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


@pytest.mark.parametrize(
    "hours, start, end, expected_s",
    [
        # Friday 17:50 to Monday 09:15: 10 minutes on Friday, 15 on Monday
        (WEEKDAYS, berlin(2026, 6, 5, 17, 50), berlin(2026, 6, 8, 9, 15), 25 * 60),
        (WEEKDAYS, berlin(2026, 6, 3, 8, 0), berlin(2026, 6, 3, 20, 0), 9 * 3600),
        (WEEKDAYS, berlin(2026, 6, 6, 8, 0), berlin(2026, 6, 7, 20, 0), 0),  # a weekend
        (None, berlin(2026, 6, 6, 8, 0), berlin(2026, 6, 6, 8, 30), 1800),  # around the clock
        (WEEKDAYS, berlin(2026, 6, 3, 12, 0), berlin(2026, 6, 3, 11, 0), 0),  # backwards: nothing
        # Saturday noon to Monday noon across the spring change (Sunday 29 March 2026 lasts 23 h):
        # 6 h + 9 h + 3 h of wall-clock business hours, not 17 h as a fixed UTC offset would give
        (EVERY_DAY, berlin(2026, 3, 28, 12, 0), berlin(2026, 3, 30, 12, 0), 18 * 3600),
        # ... and across the autumn change (Sunday 25 October 2026 lasts 25 h)
        (EVERY_DAY, berlin(2026, 10, 24, 12, 0), berlin(2026, 10, 26, 12, 0), 18 * 3600),
        # hours past midnight: 22:00–06:00 on the autumn night holds 9 real hours
        (NIGHTS, berlin(2026, 10, 24, 12, 0), berlin(2026, 10, 25, 12, 0), 9 * 3600),
    ],
)
def test_business_seconds(
    hours: BusinessHours | None, start: datetime, end: datetime, expected_s: float
) -> None:
    """Only time inside business hours counts; the hours are wall-clock hours of the target's zone."""
    assert business_seconds(hours, start.astimezone(UTC), end.astimezone(UTC)) == expected_s
    assert business_seconds(hours, start, end) == expected_s  # the zone of the arguments does not matter


def test_an_unknown_time_zone_fails_when_the_target_is_made() -> None:
    """A typo in the zone is a configuration error at load, not a crash at evaluation."""
    with pytest.raises(Exception, match="Mars/Olympus"):
        BusinessHours(tz="Mars/Olympus")


@pytest.mark.parametrize(
    "samples, breached",
    [
        ([], None),
        ([900.0] * 19, None),  # fewer than min_samples: not judged
        ([1.0] * 19 + [900.0], False),  # one slow event in 20 is within p95
        ([1.0] * 18 + [61.0, 900.0], True),
        ([60.0] * 40, False),  # ≤ 60 s is met
    ],
)
def test_latency_target_p95(samples: list[float], breached: bool | None) -> None:
    """'p95 end to end ≤ 60 s' on the end-to-end times of the window."""
    assert LatencyTarget("p95 end to end", max_s=60.0).breached(samples) is breached


@pytest.mark.parametrize(
    "last_event_at, now, breached",
    [
        (None, berlin(2026, 6, 3, 12, 0), None),  # a source that never had an event has no gap
        (berlin(2026, 6, 3, 11, 45), berlin(2026, 6, 3, 12, 0), False),
        (berlin(2026, 6, 3, 11, 29), berlin(2026, 6, 3, 12, 0), True),
        (berlin(2026, 6, 5, 17, 50), berlin(2026, 6, 8, 9, 15), False),  # the weekend does not count
        (berlin(2026, 6, 5, 17, 50), berlin(2026, 6, 8, 9, 25), True),
    ],
)
def test_gap_target_in_business_hours(
    last_event_at: datetime | None, now: datetime, breached: bool | None
) -> None:
    """'No gap over 30 min in business hours (Europe/Berlin, Mon–Fri 09:00–18:00)'."""
    assert GapTarget("gap", max_gap_s=1800.0, hours=WEEKDAYS).breached(last_event_at, now) is breached


def test_a_day_with_one_gap_raises_exactly_one_breach_and_one_recovery() -> None:
    """Events every 5 minutes through a business day, none from 12:00 to 13:30; the target is
    evaluated every minute from 07:00 to 20:00: one breach after 12:30, one recovery after 13:30,
    nothing before opening or after closing time."""
    target = GapTarget("no gap over 30 min", max_gap_s=1800.0, hours=WEEKDAYS)
    tracker = SlaTracker(debounce=Debounce(breach_after=3, recover_after=3))
    day = berlin(2026, 6, 3, 0, 0)  # a Wednesday
    outage = (berlin(2026, 6, 3, 12, 0), berlin(2026, 6, 3, 13, 30))
    arrivals = [day + timedelta(minutes=m) for m in range(0, 24 * 60, 5)]
    arrivals = [t for t in arrivals if not outage[0] < t < outage[1]]
    events = []
    for minute in range(7 * 60, 20 * 60):
        now = day + timedelta(minutes=minute)
        last = max(t for t in arrivals if t <= now)
        found = tracker.feed(target.name, target.breached(last, now), now)
        if found is not None:
            events.append((found.transition, found.at.astimezone(BERLIN).strftime("%H:%M")))
    assert events == [(Transition.BREACH, "12:33"), (Transition.RECOVERY, "13:32")]
