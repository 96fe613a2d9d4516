"""SLA targets and their evaluation; `debounce` turns evaluations into one breach and one recovery.

Two kinds of target:

- `LatencyTarget`: "p95 end to end ≤ 60 s" — the nearest-rank quantile of the end-to-end times
  (processed_at − received_at) of the events finished in the trailing window; with fewer than
  `min_samples` of them the target is not judged (None), so a quiet hour never breaches it.
- `GapTarget`: "no gap over 30 min in business hours" — the time since the last event, counting only
  business hours in the target's time zone: Friday 17:50 to Monday 09:15 with hours Mon–Fri 09:00–18:00
  is a gap of 25 minutes. Business hours are wall-clock times, so on a daylight-saving day they still
  last 9 hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from events.health.debounce import AlertState, Debounce, Transition, step
from events.health.stats import quantile


@dataclass(frozen=True)
class BusinessHours:
    tz: str  # an IANA zone, e.g. "Europe/Berlin"
    days: frozenset[int] = frozenset(range(5))  # 0 = Monday
    start: time = time(9)
    end: time = time(18)  # an end at or before the start runs past midnight

    def __post_init__(self) -> None:
        ZoneInfo(self.tz)  # an unknown zone fails here, when the target is loaded

    def intervals(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The business-hours intervals (in UTC) that overlap [start, end)."""
        zone = ZoneInfo(self.tz)
        first, last = start.astimezone(zone).date() - timedelta(days=1), end.astimezone(zone).date()
        found = []
        day = first
        while day <= last:
            if day.weekday() in self.days:
                # in UTC: Python subtracts two times of the same zone as wall-clock times, which
                # is an hour off across a daylight-saving change
                opens = datetime.combine(day, self.start, tzinfo=zone).astimezone(UTC)
                closes_on = day if self.end > self.start else day + timedelta(days=1)
                closes = datetime.combine(closes_on, self.end, tzinfo=zone).astimezone(UTC)
                if opens < end and closes > start:
                    found.append((opens, closes))
            day += timedelta(days=1)
        return found


def business_seconds(hours: BusinessHours | None, start: datetime, end: datetime) -> float:
    """Seconds of [start, end) inside business hours (all of them when `hours` is None)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        return 0.0
    if hours is None:
        return (end - start).total_seconds()
    overlaps = (min(closes, end) - max(opens, start) for opens, closes in hours.intervals(start, end))
    return sum(overlap.total_seconds() for overlap in overlaps)


@dataclass(frozen=True)
class LatencyTarget:
    name: str
    max_s: float
    quantile: float = 0.95
    min_samples: int = 20

    def breached(self, samples_s: Sequence[float]) -> bool | None:
        return self.judge(quantile(samples_s, self.quantile), len(samples_s))

    def judge(self, value_s: float | None, samples: int) -> bool | None:
        """The same, from the quantile and the sample count (a database computed the quantile)."""
        if samples < self.min_samples or value_s is None:
            return None
        return value_s > self.max_s


@dataclass(frozen=True)
class GapTarget:
    name: str
    max_gap_s: float
    hours: BusinessHours | None = None  # None: around the clock

    def breached(self, last_event_at: datetime | None, now: datetime) -> bool | None:
        """None until the source has had an event: a source never used has no gap to speak of."""
        if last_event_at is None:
            return None
        return business_seconds(self.hours, last_event_at, now) > self.max_gap_s


@dataclass(frozen=True)
class SlaEvent:
    target: str
    transition: Transition
    at: datetime


@dataclass
class SlaTracker:
    """The alert state of each target of one source; feed it evaluations, get transitions back."""

    debounce: Debounce = field(default_factory=Debounce)
    states: dict[str, AlertState] = field(default_factory=dict)

    def feed(self, target: str, breached: bool | None, now: datetime) -> SlaEvent | None:
        state, transition = step(self.states.get(target, AlertState()), breached, self.debounce, now)
        self.states[target] = state
        return SlaEvent(target, transition, now) if transition else None
