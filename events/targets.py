"""What an operator expects of a source, from the sources file: SLA targets, anomaly thresholds and
the vendor API quota. Validated when the file loads (a mistake is one line naming the field).

    [sources.shop.sla]
    p95_end_to_end_s = 60            # 95 % of events processed within 60 s of arriving
    max_gap = "30m"                  # never 30 minutes without an event ...
    business_hours = "09:00-18:00"   # ... counted in these hours only (omit: around the clock)
    business_days = ["mon", "tue", "wed", "thu", "fri"]
    timezone = "Europe/Berlin"
    breach_after = 3                 # bad evaluations in a row (one a minute) before an alert
    recover_after = 3                # good ones in a row before its recovery

    [sources.shop.anomaly]           # on by default, with these thresholds
    window = "30m"
    drop_ratio = 0.2                 # "stopped": at most 20 % of the expected events
    surge_ratio = 4.0
    failure_jump = 0.2               # failure share 20 points above its usual level

    [sources.shop.api]
    daily_quota = 40000              # vendor API calls per UTC day (the forecast says when it runs out)

The objects of `events.health` (pure maths) are built from these: `SlaConfig.latency_target()`,
`SlaConfig.gap_target()`, `AnomalyConfig.policy()`.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from events.dlq import parse_duration
from events.health.anomaly import AnomalyPolicy
from events.health.debounce import Debounce
from events.health.sla import BusinessHours, GapTarget, LatencyTarget
from schemas.errors import HookyardError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
LATENCY_TARGET = "p95_end_to_end"
GAP_TARGET = "max_gap"


def _seconds(value: Any) -> Any:
    """A duration: a number of seconds, or text such as "90s", "30m", "12h", "7d"."""
    if isinstance(value, str):
        try:
            return parse_duration(value).total_seconds()
        except HookyardError as exc:
            raise ValueError(str(exc)) from None
    return value


Duration = Annotated[float, BeforeValidator(_seconds), Field(ge=1)]


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)") from None
    return value


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    breach_after: int = Field(default=3, ge=1, le=1000)
    recover_after: int = Field(default=3, ge=1, le=1000)

    def debounce(self) -> Debounce:
        return Debounce(breach_after=self.breach_after, recover_after=self.recover_after)


class SlaConfig(_Block):
    """`[sources.X.sla]`: what the source promises; each target is judged once a minute."""

    p95_end_to_end_s: float | None = Field(default=None, gt=0)
    latency_window: Duration = 900.0  # the p95 is over the events finished in this window
    min_samples: int = Field(default=20, ge=1)  # fewer finished events: latency not judged
    max_gap: Duration | None = None
    business_hours: str | None = None  # "09:00-18:00"; an end before the start runs past midnight
    business_days: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri")
    timezone: str = "UTC"

    _zone = field_validator("timezone")(_zone)

    @field_validator("business_hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is not None and not _HOURS.match(value):
            raise ValueError('business hours are "HH:MM-HH:MM", e.g. "09:00-18:00"')
        return value

    def latency_target(self) -> LatencyTarget | None:
        if self.p95_end_to_end_s is None:
            return None
        return LatencyTarget(LATENCY_TARGET, self.p95_end_to_end_s, 0.95, self.min_samples)

    def gap_target(self) -> GapTarget | None:
        if self.max_gap is None:
            return None
        hours = None
        if self.business_hours is not None:
            start, end = (time(int(t[:2]) % 24, int(t[3:])) for t in self.business_hours.split("-"))
            days = frozenset(DAYS.index(day) for day in self.business_days)
            hours = BusinessHours(tz=self.timezone, days=days, start=start, end=end)
        return GapTarget(GAP_TARGET, self.max_gap, hours)


class AnomalyConfig(_Block):
    """`[sources.X.anomaly]`: the event rate against its own hour-of-week baseline (on by default)."""

    enabled: bool = True
    timezone: str = "UTC"  # the zone whose hours the baseline follows (a shop's opening hours)
    window: Duration = 1800.0
    drop_ratio: float = Field(default=0.2, gt=0, lt=1)
    surge_ratio: float = Field(default=4.0, gt=1)
    min_expected: float = Field(default=10.0, gt=0)
    significance: float = Field(default=1e-4, gt=0, lt=0.5)
    failure_jump: float = Field(default=0.2, gt=0, le=1)
    min_attempts: int = Field(default=20, ge=1)

    _zone = field_validator("timezone")(_zone)

    def policy(self) -> AnomalyPolicy:
        return AnomalyPolicy(
            window_s=self.window,
            drop_ratio=self.drop_ratio,
            surge_ratio=self.surge_ratio,
            min_expected=self.min_expected,
            significance=self.significance,
            failure_jump=self.failure_jump,
            min_attempts=self.min_attempts,
            debounce=self.debounce(),
        )


class ApiConfig(BaseModel):
    """`[sources.X.api]`: the vendor API this source calls. Only the quota is read here."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    daily_quota: int | None = Field(default=None, ge=1)  # calls per UTC day; None: no quota
