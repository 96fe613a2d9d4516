"""The monitor's judgement of one source, and the state it keeps between runs (`monitor_state`).

`judge(state, observed, source, now)` is pure: what the database says about a source (`Observed`,
read by `workers.monitor`) and the state of the previous run go in; the new state and the alerts to
raise come out. It scores the source (`events.health.score`), feeds each SLA target of its
`[sources.X.sla]` block and each anomaly finding to its debouncer, and learns finished hours into the
anomaly baseline. The state is stored as JSON (`encode` / `decode`) with a `snapshot` of the last
judgement that `hookyard status`, the dashboard and `/metrics` show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from events.alerts import ANOMALY, SLA, Alert
from events.db import monitor_state
from events.health.anomaly import (
    AnomalyPolicy,
    Baseline,
    Counts,
    Kind,
    Monitor,
    Slot,
    evaluate,
    expected_events,
    learn,
)
from events.health.debounce import AlertState, Status
from events.health.score import ScorePolicy, SourceWindow, health_score
from events.health.sla import SlaTracker
from events.sources import Source
from events.targets import GAP_TARGET, LATENCY_TARGET

UNKNOWN = "unknown"


@dataclass(frozen=True)
class Observed:
    """What the database says about one source at `now` (see `workers.monitor.observe`)."""

    window: SourceWindow  # the scoring window (the last hour)
    e2e_p95_s: float | None = None  # over the SLA's latency window
    e2e_samples: int = 0
    anomaly_window: Counts = Counts()
    hours: Sequence[tuple[datetime, Counts]] = ()  # finished hours the baseline has not learned yet


@dataclass(frozen=True)
class SourceState:
    sla: Mapping[str, AlertState] = field(default_factory=dict)
    anomaly: Monitor = field(default_factory=Monitor)
    snapshot: Mapping[str, Any] = field(default_factory=dict)


def judge(
    state: SourceState, observed: Observed, source: Source, now: datetime
) -> tuple[SourceState, list[Alert]]:
    """One evaluation of one source: its new state and the alerts (breaches, recoveries) it raises."""
    alerts: list[Alert] = []
    sla = source.sla
    gap, latency = (sla.gap_target(), sla.latency_target()) if sla else (None, None)
    # silence is judged around the clock, so only a gap target without business hours sets it
    silence = gap.max_gap_s if gap is not None and gap.hours is None else None
    health = health_score(observed.window, now, ScorePolicy(max_silence_s=silence))

    tracker = SlaTracker(debounce=sla.debounce()) if sla else SlaTracker()
    tracker.states = {k: v for k, v in state.sla.items() if k in {LATENCY_TARGET, GAP_TARGET}}
    shown: dict[str, dict[str, Any]] = {}
    checks: list[tuple[str, bool | None, float | None, float, str]] = []
    if latency is not None:
        bad = latency.judge(observed.e2e_p95_s, observed.e2e_samples)
        detail = f"p95 end to end {_secs(observed.e2e_p95_s)} over {observed.e2e_samples} events"
        checks.append((latency.name, bad, observed.e2e_p95_s, latency.max_s, detail))
    if gap is not None:
        last = observed.window.last_event_at
        bad = gap.breached(last, now)
        seconds = None if last is None else max((now - last).total_seconds(), 0.0)
        detail = "no event yet" if last is None else f"last event {_secs(seconds)} ago"
        checks.append((gap.name, bad, seconds, gap.max_gap_s, detail))
    for name, bad, value, limit, detail in checks:
        event = tracker.feed(name, bad, now)
        if event is not None:
            alerts.append(Alert(source.name, SLA, name, event.transition, now, f"{name}: {detail}"))
        status = tracker.states[name].status
        shown_status = UNKNOWN if bad is None and status is Status.OK else str(status)
        shown[name] = {"status": shown_status, "value": value, "limit": limit}
    if tracker.states.keys() - shown.keys():
        tracker.states = {k: v for k, v in tracker.states.items() if k in shown}

    monitor, expected, anomalies = state.anomaly, None, {}
    if source.anomaly.enabled:
        policy = source.anomaly.policy()
        monitor = _for_zone(monitor, source.anomaly.timezone)
        for hour, counts in observed.hours:
            monitor = learn(monitor, hour, counts, policy)
        monitor, raised = evaluate(monitor, now, observed.anomaly_window, policy)
        for anomaly in raised:
            alerts.append(
                Alert(source.name, ANOMALY, str(anomaly.kind), anomaly.transition, now, anomaly.detail)
            )
        expected = _expected(monitor, now, policy)
        anomalies = {str(kind): str(alert.status) for kind, alert in monitor.alerts.items()}
    snapshot = {
        "evaluated_at": now.isoformat(),
        "score": health.score,
        "worst": health.worst,
        "components": health.components,
        "sla": shown,
        "anomalies": anomalies,
        "window_events": observed.anomaly_window.events,
        "expected_events": expected,
        "last_event_at": None
        if observed.window.last_event_at is None
        else observed.window.last_event_at.isoformat(),
    }
    return SourceState(sla=dict(tracker.states), anomaly=monitor, snapshot=snapshot), alerts


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _secs(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f} s"


def _for_zone(monitor: Monitor, tz: str) -> Monitor:
    """A baseline learned in another zone's hours is of no use: start again in the new one."""
    return monitor if monitor.baseline.tz == tz else Monitor(baseline=Baseline(tz=tz))


def _expected(monitor: Monitor, now: datetime, policy: AnomalyPolicy) -> float | None:
    found = expected_events(monitor.baseline, now - timedelta(seconds=policy.window_s), now, policy)
    return None if found is None else round(found[0], 1)


# --- the state as JSON -------------------------------------------------------------------------


def _alert_state(state: AlertState) -> dict[str, Any]:
    return {
        "status": str(state.status),
        "streak": state.streak,
        "since": _iso(state.since),
    }


def _alert_state_of(data: Mapping[str, Any]) -> AlertState:
    since = data.get("since")
    return AlertState(
        Status(data["status"]), int(data["streak"]), datetime.fromisoformat(since) if since else None
    )


def _slots(slots: Sequence[Slot | None]) -> list[list[float] | None]:
    return [None if s is None else [s.mean, s.var, s.n] for s in slots]


def _slots_of(data: Sequence[Sequence[float] | None]) -> tuple[Slot | None, ...]:
    return tuple(None if s is None else Slot(float(s[0]), float(s[1]), int(s[2])) for s in data)


def encode(state: SourceState) -> dict[str, Any]:
    baseline = state.anomaly.baseline
    return {
        "sla": {name: _alert_state(s) for name, s in state.sla.items()},
        "anomaly": {
            "tz": baseline.tz,
            "week": _slots(baseline.week),
            "day": _slots(baseline.day),
            "failure_share": baseline.failure_share,
            "alerts": {str(kind): _alert_state(s) for kind, s in state.anomaly.alerts.items()},
        },
        "snapshot": dict(state.snapshot),
    }


def decode(data: Mapping[str, Any] | None) -> SourceState:
    if not data:
        return SourceState()
    anomaly = data.get("anomaly") or {}
    monitor = Monitor()
    if anomaly:
        baseline = Baseline(
            tz=anomaly["tz"],
            week=_slots_of(anomaly["week"]),
            day=_slots_of(anomaly["day"]),
            failure_share=anomaly.get("failure_share"),
        )
        alerts = {Kind(k): _alert_state_of(v) for k, v in (anomaly.get("alerts") or {}).items()}
        monitor = replace(Monitor(), baseline=baseline, alerts=alerts)
    return SourceState(
        sla={k: _alert_state_of(v) for k, v in (data.get("sla") or {}).items()},
        anomaly=monitor,
        snapshot=data.get("snapshot") or {},
    )


def snapshots(conn: Connection) -> dict[str, dict[str, Any]]:
    """source → the snapshot of the monitor's last judgement (what status pages show)."""
    return {
        row.source: dict((row.state or {}).get("snapshot") or {})
        for row in conn.execute(select(monitor_state.c.source, monitor_state.c.state))
    }


def breached(snapshot: Mapping[str, Any]) -> list[str]:
    """The SLA targets and anomalies of a snapshot that are in breach now."""
    sla = [name for name, s in (snapshot.get("sla") or {}).items() if s.get("status") == str(Status.BREACHED)]
    odd = [kind for kind, s in (snapshot.get("anomalies") or {}).items() if s == str(Status.BREACHED)]
    return sla + odd
