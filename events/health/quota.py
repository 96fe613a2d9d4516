"""A vendor API quota per UTC day: how much is left and, at the recent rate, when it runs out.

The recent rate is the trailing hour, estimated from two hourly counts: this hour's calls plus the
part of the previous hour's that the trailing hour still covers (its count × the share of it left
in the window). A forecast says `at_risk` when that rate would use up what is left before the quota
resets at the next UTC midnight, and `exhausted` once the day's calls reach the quota.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

HOUR_S = 3600.0


class QuotaStatus(StrEnum):
    OK = "ok"
    AT_RISK = "at_risk"
    EXHAUSTED = "exhausted"


@dataclass(frozen=True)
class QuotaForecast:
    quota: int
    used: int
    rate_per_h: float
    resets_at: datetime
    runs_out_at: datetime | None  # before the reset, at the recent rate; None: it lasts the day
    status: QuotaStatus

    @property
    def remaining(self) -> int:
        return max(self.quota - self.used, 0)

    @property
    def used_ratio(self) -> float:
        return self.used / self.quota


def day_start(now: datetime) -> datetime:
    """The UTC midnight that began `now`'s quota day."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def hour_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def trailing_hour_rate(this_hour: float, last_hour: float, now: datetime) -> float:
    """Calls in the hour before `now`, from the counts of the current and the previous UTC hour."""
    elapsed = (now - hour_start(now)).total_seconds() / HOUR_S
    return this_hour + last_hour * (1.0 - elapsed)


def forecast(quota: int, used: int, rate_per_h: float, now: datetime) -> QuotaForecast:
    """Where today's quota stands at `now`, and when it runs out at `rate_per_h`."""
    resets = day_start(now) + timedelta(days=1)
    if used >= quota:
        return QuotaForecast(quota, used, rate_per_h, resets, now, QuotaStatus.EXHAUSTED)
    runs_out = None
    if rate_per_h > 0:
        at = now + timedelta(hours=(quota - used) / rate_per_h)
        runs_out = at if at < resets else None
    status = QuotaStatus.AT_RISK if runs_out is not None else QuotaStatus.OK
    return QuotaForecast(quota, used, rate_per_h, resets, runs_out, status)
