"""The event rate of a source against its own history, with hour-of-week seasonality.

Baseline, learned once an hour from the finished hour's counts, in the source's time zone:
- `week`: per hour of the week (168 slots), an exponentially weighted mean of the events in that hour
  and its variance (EWMA, `alpha_week` 0.3: mostly the last three weeks); each slot learns weekly;
- `day`: the same per hour of the day, weekdays and weekends apart (48 slots, learning daily): what
  a source younger than `min_weeks` weeks is judged on once the slot has seen `min_days` days (so a
  young source's Sunday is not judged against its Wednesdays); a younger source is not judged at all;
- `failure_share`: an EWMA (`alpha_failures`) of failures / attempts over the hours with attempts.
An hour during which an alert was open is not learned, so an outage never becomes the new normal,
unless the alert has been open for `relearn_after_s` (then the change is the new normal).

Expected events in the window [now − window_s, now): the sum over the local hours it touches of the
slot mean × the share of that hour inside the window. Local hours keep a pattern that follows the
wall clock (a shop opens at 9) aligned across daylight-saving changes.

Findings, each True (anomalous), False (normal) or None (cannot tell):
- stopped: observed ≤ drop_ratio × expected, expected ≥ min_expected, and P(X ≤ observed) below
  `significance` for a quasi-Poisson X (count and expectation divided by the slots' dispersion
  var/mean, at least 1); normal when observed > drop_ratio × expected. Observed 0: "stopped arriving".
- surge: observed ≥ surge_ratio × max(expected, min_expected) and P(X ≥ observed) < significance (a
  quiet hour needs a real flood, not a dozen events, to count as a surge).
- failures: over at least `min_attempts` attempts in the window, a failure share at or above the
  baseline share + `failure_jump`; normal below the baseline + failure_jump / 2 (hysteresis).
Each kind is debounced on its own (`events.health.debounce`): one alert, then one recovery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from events.health.debounce import AlertState, Debounce, Status, Transition, step
from events.health.stats import poisson_cdf, poisson_sf

HOURS_A_WEEK, HOURS_A_DAY = 168, 24
WEEKEND = (5, 6)  # Saturday, Sunday, local time
HOUR = timedelta(hours=1)


class Kind(StrEnum):
    STOPPED = "stopped"
    SURGE = "surge"
    FAILURES = "failures"


@dataclass(frozen=True)
class AnomalyPolicy:
    window_s: float = 1800.0
    alpha_week: float = 0.3
    alpha_day: float = 0.3
    alpha_failures: float = 0.1
    min_weeks: int = 2
    min_days: int = 3
    drop_ratio: float = 0.2
    surge_ratio: float = 4.0
    min_expected: float = 10.0
    significance: float = 1e-4
    failure_jump: float = 0.2
    min_attempts: int = 20
    relearn_after_s: float = 3 * 86400.0
    debounce: Debounce = field(default_factory=lambda: Debounce(breach_after=3, recover_after=3))


@dataclass(frozen=True)
class Counts:
    """Events, processing attempts and failed attempts in some interval (an hour, a window)."""

    events: float = 0.0
    attempts: float = 0.0
    failures: float = 0.0


@dataclass(frozen=True)
class Slot:
    mean: float
    var: float
    n: int

    @property
    def dispersion(self) -> float:
        return max(1.0, self.var / self.mean) if self.mean > 0 else 1.0


def learn_slot(slot: Slot | None, value: float, alpha: float) -> Slot:
    """EWMA of the mean and variance; the first value also seeds a Poisson-like variance."""
    if slot is None:
        return Slot(mean=value, var=max(value, 1.0), n=1)
    diff = value - slot.mean
    return Slot(
        mean=slot.mean + alpha * diff, var=(1 - alpha) * (slot.var + alpha * diff * diff), n=slot.n + 1
    )


@dataclass(frozen=True)
class Baseline:
    tz: str = "UTC"
    week: tuple[Slot | None, ...] = (None,) * HOURS_A_WEEK
    day: tuple[Slot | None, ...] = (None,) * (2 * HOURS_A_DAY)  # weekdays, then weekends
    failure_share: float | None = None

    def __post_init__(self) -> None:
        ZoneInfo(self.tz)  # an unknown zone fails when the baseline is made


def _local(at: datetime, tz: str) -> datetime:
    return at.astimezone(ZoneInfo(tz))


def learn_hour(baseline: Baseline, hour_start: datetime, counts: Counts, policy: AnomalyPolicy) -> Baseline:
    """Fold one finished hour (starting at `hour_start`) into the baseline."""
    local = _local(hour_start, baseline.tz)
    w, d = _week_slot(local), _day_slot(local)
    week, day = list(baseline.week), list(baseline.day)
    week[w] = learn_slot(week[w], counts.events, policy.alpha_week)
    day[d] = learn_slot(day[d], counts.events, policy.alpha_day)
    share = baseline.failure_share
    if counts.attempts > 0:
        observed = counts.failures / counts.attempts
        share = observed if share is None else share + policy.alpha_failures * (observed - share)
    return replace(baseline, week=tuple(week), day=tuple(day), failure_share=share)


def _week_slot(local: datetime) -> int:
    return local.weekday() * HOURS_A_DAY + local.hour


def _day_slot(local: datetime) -> int:
    return (HOURS_A_DAY if local.weekday() in WEEKEND else 0) + local.hour


def _trusted(baseline: Baseline, local: datetime, policy: AnomalyPolicy) -> Slot | None:
    weekly = baseline.week[_week_slot(local)]
    if weekly is not None and weekly.n >= policy.min_weeks:
        return weekly
    daily = baseline.day[_day_slot(local)]
    return daily if daily is not None and daily.n >= policy.min_days else None


def expected_events(
    baseline: Baseline, start: datetime, end: datetime, policy: AnomalyPolicy
) -> tuple[float, float] | None:
    """(expected events in [start, end), dispersion), or None while the baseline cannot tell."""
    total, dispersion, at = 0.0, 1.0, start.astimezone(UTC)
    end = end.astimezone(UTC)
    while at < end:
        local = _local(at, baseline.tz)
        hour_start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        piece_end = min(hour_start + HOUR, end)
        slot = _trusted(baseline, local, policy)
        if slot is None:
            return None
        total += slot.mean * (piece_end - at) / HOUR
        dispersion = max(dispersion, slot.dispersion)
        at = piece_end
    return total, dispersion


@dataclass(frozen=True)
class Assessment:
    observed: Counts
    expected: float | None
    findings: Mapping[Kind, bool | None]


def assess(baseline: Baseline, now: datetime, window: Counts, policy: AnomalyPolicy) -> Assessment:
    """Judge the window [now − window_s, now) against the baseline (see the module docstring)."""
    findings: dict[Kind, bool | None] = {Kind.STOPPED: None, Kind.SURGE: None}
    found = expected_events(baseline, now - timedelta(seconds=policy.window_s), now, policy)
    if found is not None:
        expected, dispersion = found
        count, lam = window.events / dispersion, expected / dispersion
        if window.events > policy.drop_ratio * expected:
            findings[Kind.STOPPED] = False
        elif expected >= policy.min_expected and poisson_cdf(count, lam) < policy.significance:
            findings[Kind.STOPPED] = True
        surging = window.events >= policy.surge_ratio * max(expected, policy.min_expected)
        findings[Kind.SURGE] = surging and poisson_sf(count, lam) < policy.significance
    findings[Kind.FAILURES] = _failures(baseline, window, policy)
    return Assessment(window, None if found is None else found[0], findings)


def _failures(baseline: Baseline, window: Counts, policy: AnomalyPolicy) -> bool | None:
    if window.attempts < policy.min_attempts:
        return None
    share, usual = window.failures / window.attempts, baseline.failure_share or 0.0
    if share >= usual + policy.failure_jump:
        return True
    return False if share < usual + policy.failure_jump / 2 else None


@dataclass(frozen=True)
class Anomaly:
    kind: Kind
    transition: Transition
    at: datetime
    detail: str


@dataclass(frozen=True)
class Monitor:
    """Everything to keep between runs for one source: its baseline and the state of each alert."""

    baseline: Baseline = field(default_factory=Baseline)
    alerts: Mapping[Kind, AlertState] = field(default_factory=dict)

    def alerting(self, now: datetime, policy: AnomalyPolicy) -> bool:
        """An alert is open, and not for so long that its cause has become the new normal."""
        return any(
            state.status is Status.BREACHED
            and (state.since is None or (now - state.since).total_seconds() < policy.relearn_after_s)
            for state in self.alerts.values()
        )


def learn(monitor: Monitor, hour_start: datetime, counts: Counts, policy: AnomalyPolicy) -> Monitor:
    """Learn a finished hour, unless an alert was open (see `Monitor.alerting`)."""
    if monitor.alerting(hour_start + HOUR, policy):
        return monitor
    return replace(monitor, baseline=learn_hour(monitor.baseline, hour_start, counts, policy))


def evaluate(
    monitor: Monitor, now: datetime, window: Counts, policy: AnomalyPolicy
) -> tuple[Monitor, list[Anomaly]]:
    """Assess the window ending `now` and debounce each finding; the new monitor and its transitions."""
    assessment = assess(monitor.baseline, now, window, policy)
    alerts, raised = dict(monitor.alerts), []
    for kind, bad in assessment.findings.items():
        alerts[kind], transition = step(alerts.get(kind, AlertState()), bad, policy.debounce, now)
        if transition is not None:
            raised.append(Anomaly(kind, transition, now, describe(kind, transition, assessment)))
    return replace(monitor, alerts=alerts), raised


def describe(kind: Kind, transition: Transition, assessment: Assessment) -> str:
    seen, expected = assessment.observed, assessment.expected
    if transition is Transition.RECOVERY:
        return f"{kind}: back to normal"
    if kind is Kind.FAILURES:
        return f"failure rate jumped: {seen.failures:g} of {seen.attempts:g} attempts failed"
    rate = f"{seen.events:g} events where {expected or 0:.0f} were expected"
    if kind is Kind.STOPPED:
        return f"events stopped arriving: {rate}" if seen.events == 0 else f"event rate dropped: {rate}"
    return f"event rate surged: {rate}"
