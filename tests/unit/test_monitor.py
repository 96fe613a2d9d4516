"""The monitor: its blocks in the sources file, the judgement of a source (pure), its state as JSON,
the batched per-source counters, and the job on a real (SQLite) database raising each alert once."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from connectors.usage import Tally
from events import counts
from events.alerts import RECOVERED, SLA_BREACHED
from events.db import events, monitor_state, source_counts
from events.health.anomaly import Counts
from events.health.debounce import Status
from events.health.score import SourceWindow
from events.monitoring import Observed, SourceState, decode, encode, judge
from events.sources import Source, load_sources
from events.targets import AnomalyConfig, SlaConfig
from schemas.errors import ConfigError
from tests.unit.test_processing import add_event
from workers import monitor

NOW = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
SHOP = '[sources.shop]\nconnector = "shopify"\nsecrets = ["s3cret"]\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hookyard.toml"
    path.write_text(SHOP + text)
    return path


def test_blocks_load_into_targets(tmp_path: Path) -> None:
    """SLA, anomaly and API blocks become the health maths' targets and policies."""
    path = write(
        tmp_path,
        '[sources.shop.sla]\np95_end_to_end_s = 60\nmax_gap = "30m"\n'
        'business_hours = "09:00-18:00"\ntimezone = "Europe/Berlin"\nbreach_after = 2\n'
        '[sources.shop.anomaly]\nwindow = "1h"\ndrop_ratio = 0.1\n'
        "[sources.shop.api]\ndaily_quota = 40000\n",
    )
    source = load_sources(path)["shop"]
    assert source.sla is not None and source.api.daily_quota == 40000
    gap, latency = source.sla.gap_target(), source.sla.latency_target()
    assert latency is not None and (latency.max_s, latency.quantile) == (60, 0.95)
    assert gap is not None and gap.max_gap_s == 1800 and gap.hours is not None
    assert gap.hours.tz == "Europe/Berlin" and gap.hours.days == frozenset(range(5))
    policy = source.anomaly.policy()
    assert (policy.window_s, policy.drop_ratio, policy.debounce.breach_after) == (3600, 0.1, 3)
    assert source.sla.debounce().breach_after == 2


@pytest.mark.parametrize(
    "text, field",
    [
        ('[sources.shop.sla]\nmax_gap = "30 minutes"\n', "sources.shop.sla.max_gap"),
        ("[sources.shop.sla]\np95_end_to_end_s = -1\n", "sources.shop.sla.p95_end_to_end_s"),
        ('[sources.shop.sla]\ntimezone = "Mars/Olympus"\n', "sources.shop.sla.timezone"),
        ('[sources.shop.sla]\nbusiness_hours = "9-18"\n', "sources.shop.sla.business_hours"),
        ('[sources.shop.sla]\nbusiness_days = ["monday"]\n', "sources.shop.sla.business_days"),
        ("[sources.shop.sla]\nbreach_after = 0\n", "sources.shop.sla.breach_after"),
        ("[sources.shop.sla]\nlatency = 60\n", "sources.shop.sla.latency"),
        ("[sources.shop.anomaly]\ndrop_ratio = 1.5\n", "sources.shop.anomaly.drop_ratio"),
        ("[sources.shop.api]\ndaily_quota = 0\n", "sources.shop.api.daily_quota"),
    ],
)
def test_a_mistake_in_a_block_is_one_line_naming_the_field(tmp_path: Path, text: str, field: str) -> None:
    """Each mistake stops the load with a ConfigError naming file and field, on one line."""
    with pytest.raises(ConfigError) as caught:
        load_sources(write(tmp_path, text))
    message = str(caught.value)
    assert field in message and str(tmp_path) in message and "\n" not in message


def test_the_hookyard_source_name_is_reserved(tmp_path: Path) -> None:
    """No configured source may take the name of Hookyard's own alert events."""
    path = tmp_path / "hookyard.toml"
    path.write_text('[sources.hookyard]\nconnector = "github"\nsecrets = ["x"]\n')
    with pytest.raises(ConfigError, match="reserved"):
        load_sources(path)


def test_a_bad_block_stops_the_cli_with_exit_2(tmp_path: Path) -> None:
    """`hookyard status` on a file with a bad SLA block: exit 2, one line, no traceback."""
    write(tmp_path, '[sources.shop.sla]\ntimezone = "Nowhere/Land"\n')
    result = subprocess.run(
        [sys.executable, "-m", "ops.cli", "status"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "sources.shop.sla.timezone" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def source(**sla: Any) -> Source:
    return Source(
        name="shop",
        connector="shopify",
        secrets=(),
        sla=SlaConfig(**sla) if sla else None,
        anomaly=AnomalyConfig(enabled=False),
    )


def seen(last_event_at: datetime | None, **window: Any) -> Observed:
    return Observed(window=SourceWindow(last_event_at=last_event_at, **window))


def test_a_gap_breaches_once_and_recovers_once() -> None:
    """A gap target over a minute-by-minute series: one breach after `breach_after` bad minutes, none
    while it stays bad, one recovery after `recover_after` good ones."""
    target = source(max_gap="10m", breach_after=2, recover_after=2)
    state, raised = SourceState(), []
    last = NOW
    for minute in range(60):
        now = NOW + timedelta(minutes=minute)
        if minute >= 40:  # events flow again
            last = now
        state, found = judge(state, seen(last), target, now)
        raised += [(minute, a.type, a.kind) for a in found]
    assert raised == [(12, SLA_BREACHED, "max_gap"), (41, RECOVERED, "max_gap")]
    assert state.snapshot["sla"]["max_gap"]["status"] == "ok"


def test_latency_is_not_judged_on_too_few_events() -> None:
    """Fewer finished events than min_samples: 'unknown', never a breach."""
    target = source(p95_end_to_end_s=60, min_samples=20, breach_after=1)
    slow = Observed(window=SourceWindow(), e2e_p95_s=500.0, e2e_samples=5)
    state, found = judge(SourceState(), slow, target, NOW)
    assert found == [] and state.snapshot["sla"]["p95_end_to_end"]["status"] == "unknown"
    state, found = judge(state, Observed(window=SourceWindow(), e2e_p95_s=500.0, e2e_samples=50), target, NOW)
    assert [a.type for a in found] == [SLA_BREACHED]
    assert "p95 end to end 500 s over 50 events" in found[0].detail


def test_refused_deliveries_sink_the_score() -> None:
    """A wrong secret: every delivery refused, nothing stored; the score drops to 0 (red)."""
    state, _ = judge(SourceState(), seen(None, refused=12), source(), NOW)
    assert state.snapshot["score"] == 0 and state.snapshot["worst"] == "signatures"
    healthy, _ = judge(SourceState(), seen(NOW, attempts_ok=100, events=100, refused=1), source(), NOW)
    assert healthy.snapshot["score"] >= 90


def test_state_survives_json() -> None:
    """The state goes through its JSON form unchanged: alert streaks, baseline slots and the snapshot."""
    target = Source(name="shop", connector="shopify", secrets=(), sla=SlaConfig(max_gap="10m"))
    hours = [(NOW - timedelta(hours=h), Counts(events=50, attempts=50, failures=1)) for h in range(30, 0, -1)]
    observed = Observed(window=SourceWindow(last_event_at=NOW - timedelta(hours=1)), hours=hours)
    state, _ = judge(SourceState(), observed, target, NOW)
    again = decode(encode(state))
    assert again == state
    assert again.sla["max_gap"].streak == 1 and again.anomaly.baseline.week != (None,) * 168
    assert decode(None) == SourceState()


def test_counts_are_flushed_in_batches_and_put_back_on_failure(engine: Engine) -> None:
    """Tallies go to the table in one statement per flush, adding to what is there; a failed flush
    keeps its counts for the next one."""
    clock = [NOW.timestamp()]
    calls, refused = Tally(lambda: clock[0]), Tally(lambda: clock[0])
    tallies = {counts.VENDOR_CALLS: calls, counts.REFUSED: refused}
    for _ in range(3):
        calls.add("shop")
    refused.add("shop", 2)
    assert counts.flush(engine, tallies) == 5
    calls.add("shop", 4)
    clock[0] += 3600
    calls.add("shop")
    assert counts.flush(engine, tallies) == 5
    with engine.connect() as conn:
        rows = sorted((r.name, r.hour, r.count) for r in conn.execute(select(source_counts)))
        assert counts.totals(conn, counts.VENDOR_CALLS, NOW) == {"shop": 8}
        assert counts.window_total(conn, counts.REFUSED, "shop", NOW + timedelta(minutes=30), 3600) == 2
    assert rows == [
        ("refused", NOW, 2),
        ("vendor_calls", NOW, 7),
        ("vendor_calls", NOW + timedelta(hours=1), 1),
    ]
    calls.add("shop")
    assert counts.flush(DatabaseDown(), tallies) == 0  # type: ignore[arg-type]
    assert calls.drain() == {("shop", int(NOW.timestamp() // 3600) + 1): 1}


class DatabaseDown:
    def begin(self) -> Any:
        raise ConnectionError("database down")


def run(engine: Engine, sources: dict[str, Source], now: datetime) -> list[tuple[str, str]]:
    return monitor.run(engine, sources, now, interval_s=60, window_s=3600, relay_grace_s=30)


def alert_types(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(events.c.type).where(events.c.source == "hookyard").order_by(events.c.id))
        return [t for (t,) in rows]


def test_the_job_raises_each_alert_once_and_a_repeated_slot_does_nothing(
    engine: Engine, now_at: Callable[[int], datetime]
) -> None:
    """On a database: a source goes quiet past its gap, one alert event; the same slot again, nothing;
    events again, one recovery. The alerts are inbox events of the internal source, ready to publish."""
    sources = {"shop": source(max_gap="5m", breach_after=2, recover_after=1)}
    add_event(engine, {}, received_at=now_at(0))
    published = []
    for minute in range(1, 10):
        published += run(engine, sources, now_at(minute))
        published += run(engine, sources, now_at(minute))  # a duplicate fire of the same slot
    assert alert_types(engine) == [SLA_BREACHED]
    add_event(engine, {}, received_at=now_at(10))
    published += run(engine, sources, now_at(11))
    assert alert_types(engine) == [SLA_BREACHED, RECOVERED]
    assert [vendor for _, vendor in published] == ["hookyard", "hookyard"]
    with engine.connect() as conn:
        state = conn.execute(select(monitor_state)).one()
    assert state.slot == int(now_at(11).timestamp() // 60)
    assert decode(state.state).sla["max_gap"].status is Status.OK


def test_the_job_learns_finished_hours_and_keeps_going_when_a_source_fails(
    engine: Engine, now_at: Callable[[int], datetime], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source's baseline learns each finished hour once; a failing source does not stop the others."""
    sources = {
        "shop": Source(name="shop", connector="shopify", secrets=()),
        "bad": Source(name="bad", connector="shopify", secrets=()),
    }
    for minute in range(0, 120, 5):
        add_event(engine, {}, received_at=now_at(-180 + minute))
    run(engine, sources, now_at(0))
    with engine.connect() as conn:
        row = conn.execute(select(monitor_state).where(monitor_state.c.source == "shop")).one()
    baseline = decode(row.state).anomaly.baseline
    learned = [slot for slot in baseline.week if slot is not None]
    assert [slot.mean for slot in learned] == [12.0, 12.0, 0.0]  # three finished hours, the last quiet
    assert row.learned_until == NOW
    real = monitor.observe

    def flaky(conn: Any, src: Source, *args: Any) -> Any:
        if src.name == "bad":
            raise RuntimeError("boom")
        return real(conn, src, *args)

    monkeypatch.setattr(monitor, "observe", flaky)
    run(engine, sources, now_at(61))
    with engine.connect() as conn:
        slots = dict(conn.execute(select(monitor_state.c.source, monitor_state.c.slot)).all())
    assert slots["shop"] == int(now_at(61).timestamp() // 60) and slots["bad"] < slots["shop"]


@pytest.fixture
def now_at() -> Callable[[int], datetime]:
    """Minutes after a fixed hour, in UTC."""
    return lambda minute: NOW + timedelta(minutes=minute)
