"""Quota maths on tables: today's use against the quota, the trailing-hour rate from two hourly
counts, and when the quota runs out at that rate."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from events.health.quota import QuotaStatus, day_start, forecast, trailing_hour_rate


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 6, 3, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    "this_hour, last_hour, now, expected",
    [
        (0, 0, at(10, 30), 0.0),
        (600, 0, at(10, 30), 600.0),  # a new source: this hour's calls only
        (300, 1000, at(10, 30), 800.0),  # half of the previous hour is still in the window
        (0, 1000, at(10, 0), 1000.0),  # on the hour: the whole previous hour
        (120, 1000, at(10, 45), 370.0),
    ],
)
def test_trailing_hour_rate(this_hour: float, last_hour: float, now: datetime, expected: float) -> None:
    """The rate is this hour's calls plus the share of the previous hour the window still covers."""
    assert trailing_hour_rate(this_hour, last_hour, now) == pytest.approx(expected)


@pytest.mark.parametrize(
    "quota, used, rate, now, status, runs_out",
    [
        (10_000, 0, 0.0, at(10), QuotaStatus.OK, None),  # nothing used, nothing running
        (10_000, 2_000, 500.0, at(10), QuotaStatus.OK, None),  # 8000 left, 14 h × 500 = 7000: lasts
        (10_000, 2_000, 1_000.0, at(10), QuotaStatus.AT_RISK, at(18)),  # 8000 left at 1000/h
        (10_000, 9_990, 120.0, at(23, 50), QuotaStatus.AT_RISK, at(23, 55)),  # 10 left, 2 a minute
        (10_000, 9_990, 30.0, at(23, 50), QuotaStatus.OK, None),  # runs out after midnight: lasts
        (10_000, 10_000, 0.0, at(12), QuotaStatus.EXHAUSTED, at(12)),
        (10_000, 12_000, 100.0, at(12), QuotaStatus.EXHAUSTED, at(12)),  # over: still exhausted
    ],
)
def test_forecast(
    quota: int, used: int, rate: float, now: datetime, status: QuotaStatus, runs_out: datetime | None
) -> None:
    """Exhausted at the quota; at risk when the recent rate uses what is left before midnight UTC."""
    found = forecast(quota, used, rate, now)
    assert found.status is status
    assert found.runs_out_at == runs_out
    assert found.resets_at == day_start(now).replace(day=4)
    assert found.remaining == max(quota - used, 0)


def test_day_start_is_utc_midnight_whatever_the_zone_of_now() -> None:
    """A quota day is a UTC day, even when the time comes in another zone."""
    local = datetime(2026, 6, 4, 1, 30, tzinfo=ZoneInfo("Europe/Berlin"))  # 23:30 UTC the day before
    assert day_start(local) == datetime(2026, 6, 3, tzinfo=UTC)
