"""Beat leadership: the lease row and the scheduler that sends only while holding it, on fake time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery import Celery
from celery.schedules import schedule
from sqlalchemy import Engine, select, update
from structlog.testing import capture_logs

from events.db import leases
from events.leader import BEAT, Lease, current
from events.settings import get_settings
from schemas.errors import ConfigError
from workers.beat import LeaderScheduler

LEASE_S = 20.0
START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    """Fake time shared by every process of a test: wall clock and monotonic move together."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return (self.now - START).total_seconds()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def lease(engine: Engine, clock: Clock, holder: str) -> Lease:
    return Lease(engine, BEAT, holder, LEASE_S, clock)


def test_one_holder_at_a_time_and_a_new_token_for_each_term(engine: Engine) -> None:
    """The first takes the lease, the second stands by while it is renewed, and takes it (token + 1)
    only once it has expired; the first then finds it lost, and its fence fails."""
    clock = Clock()
    a, b = lease(engine, clock, "a"), lease(engine, clock, "b")
    first = a.hold()
    assert first is not None and first.token == 1
    assert b.hold() is None
    clock.advance(LEASE_S - 1)
    renewed = a.hold()
    assert renewed is not None and renewed.token == 1  # a renewal keeps the term
    clock.advance(LEASE_S - 1)
    assert b.hold() is None  # renewed 19 s ago: still a's
    clock.advance(1)
    taken = b.hold()
    assert taken is not None and taken.token == 2
    assert a.fence({"relay": 1.0}) is False  # a paused leader wakes up: nothing is sent
    assert a.hold() is None and a.term is None
    with engine.connect() as conn:
        assert current(conn, clock.now) == {
            "holder": "b",
            "token": 2,
            "since": clock.now.isoformat(),
            "until": taken.expires_at.isoformat(),
            "live": True,
        }


def test_fence_renews_and_records_last_runs_for_the_next_term(engine: Engine) -> None:
    """Each send renews the lease and stores the last runs; whoever leads next inherits them."""
    clock = Clock()
    a, b = lease(engine, clock, "a"), lease(engine, clock, "b")
    assert a.hold() is not None
    clock.advance(LEASE_S - 1)
    assert a.fence({"relay": 100.0, "monitor": 50.0})
    clock.advance(LEASE_S - 1)
    assert b.hold() is None  # the fence renewed it
    clock.advance(1)
    term = b.hold()
    assert term is not None and term.last_runs == {"relay": 100.0, "monitor": 50.0}


def test_release_hands_over_at_once(engine: Engine) -> None:
    """A clean stop ends the lease now: a standby takes it at its next look, with a new token."""
    clock = Clock()
    a, b = lease(engine, clock, "a"), lease(engine, clock, "b")
    assert a.hold() is not None
    with capture_logs() as logs:
        a.release()
    assert [entry["event"] for entry in logs] == ["beat.leader_released"]
    term = b.hold()
    assert term is not None and term.token == 2
    assert a.fence({}) is False


def test_an_unreachable_database_is_not_leadership(engine: Engine, tmp_path: Any) -> None:
    """A leader that cannot reach the database stops sending (its lease lapses for the others)."""
    clock = Clock()
    a = lease(engine, clock, "a")
    assert a.hold() is not None
    with engine.begin() as conn:  # the table disappears under it, as a lost database would
        conn.exec_driver_sql("ALTER TABLE leases RENAME TO leases_gone")
    with capture_logs() as logs:
        assert a.fence({}) is False
    assert [entry["event"] for entry in logs] == ["beat.lease_unavailable", "beat.leader_lost"]
    assert a.hold() is None


@pytest.mark.parametrize("value", ["0.5", "46", "soon"])
def test_lease_period_is_checked_when_settings_load(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """A lease outside 1–45 s stops every command with one line naming the variable."""
    monkeypatch.setenv("HOOKYARD_BEAT__LEASE_S", value)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"^HOOKYARD_BEAT__LEASE_S: "):
            get_settings()
    finally:
        get_settings.cache_clear()


# --- the scheduler, two beats, five minutes of fake time ------------------------------------------

INTERVALS = {"relay": 5.0, "monitor": 60.0, "sweep": 7.0}


@dataclass
class Beat:
    """One `hookyard beat` process: its scheduler, when it wakes next, whether it runs."""

    name: str
    scheduler: LeaderScheduler
    wake_at: float = 0.0
    running: bool = True
    sent: list[tuple[str, float]] = field(default_factory=list)


def make_beat(engine: Engine, clock: Clock, name: str) -> Beat:
    app = Celery(f"beat-{name}", broker="memory://", set_as_current=False)
    app.conf.result_expires = None  # no backend_cleanup entry
    app.conf.beat_schedule = {
        entry: {"task": f"t.{entry}", "schedule": schedule(timedelta(seconds=s), nowfun=clock)}
        for entry, s in INTERVALS.items()
    }
    sent: list[tuple[str, float]] = []

    class Recording(LeaderScheduler):
        def send_task(self, task: str, *args: Any, **kwargs: Any) -> None:
            sent.append((task.removeprefix("t."), clock.monotonic()))

    scheduler = Recording(app, lease=lease(engine, clock, name), monotonic=clock.monotonic)
    return Beat(name, scheduler, sent=sent)


def run(beats: list[Beat], clock: Clock, until_s: float, step_s: float = 0.25) -> None:
    """Advance fake time; each running beat ticks when it wakes, and sleeps what tick returned."""
    while clock.monotonic() < until_s:
        for beat in beats:
            if beat.running and clock.monotonic() >= beat.wake_at:
                beat.wake_at = clock.monotonic() + beat.scheduler.tick()
        clock.advance(step_s)


@pytest.fixture
def two_beats(engine: Engine) -> Iterator[tuple[Clock, Beat, Beat]]:
    clock = Clock()
    a, b = make_beat(engine, clock, "a"), make_beat(engine, clock, "b")
    yield clock, a, b
    for beat in (a, b):
        beat.scheduler.app.close()


def check_once_per_slot(beats: list[Beat]) -> None:
    """Across every beat, an entry is never sent again before its interval is up."""
    for entry, interval in INTERVALS.items():
        times = sorted(t for beat in beats for name, t in beat.sent if name == entry)
        assert times, entry
        gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
        assert all(gap >= interval for gap in gaps), (entry, gaps)


def test_two_beats_one_sends_and_the_standby_takes_over_a_killed_leader(
    two_beats: tuple[Clock, Beat, Beat],
) -> None:
    """Five minutes: a leads, b sends nothing; a dies (SIGKILL: no release) at 100 s; b takes over
    within 1.25 × the lease, goes on from a's last runs, and every entry runs once per interval."""
    clock, a, b = two_beats
    run([a, b], clock, 100)
    assert a.sent and not b.sent
    relays = sum(1 for name, _ in a.sent if name == "relay")
    assert relays == 100 // INTERVALS["relay"] - 1 or relays == 100 // INTERVALS["relay"]
    a.running = False  # killed: its lease lapses on its own
    run([a, b], clock, 300)
    first_b = min(t for _, t in b.sent)
    last_a = max(t for _, t in a.sent)
    assert last_a < 100 < first_b <= 100 + 1.25 * LEASE_S + INTERVALS["relay"]
    check_once_per_slot([a, b])
    assert b.scheduler.lease.term is not None and b.scheduler.lease.term.token == 2


def test_a_paused_leader_that_wakes_after_expiry_sends_nothing(
    two_beats: tuple[Clock, Beat, Beat],
) -> None:
    """a is paused (SIGSTOP) for three lease periods; b takes over; a wakes (SIGCONT) and, from then
    on, sends nothing while b leads."""
    clock, a, b = two_beats
    run([a, b], clock, 60)
    sent_before_pause = len(a.sent)
    a.running = False
    run([a, b], clock, 60 + 3 * LEASE_S)
    assert b.sent
    a.running, a.wake_at = True, clock.monotonic()  # its sleep is over: it ticks at once
    with capture_logs() as logs:
        run([a, b], clock, 300)
    assert len(a.sent) == sent_before_pause
    assert {
        "event": "beat.leader_lost",
        "lease": BEAT,
        "holder": "a",
        "token": 1,
        "log_level": "warning",
    } in logs
    check_once_per_slot([a, b])


def test_beat_stopped_with_sigterm_hands_over_at_the_next_look(
    two_beats: tuple[Clock, Beat, Beat],
) -> None:
    """Closing the leader's scheduler (what Celery does on SIGTERM) releases the lease: the standby
    leads within one look (lease / 4), not after the lease runs out."""
    clock, a, b = two_beats
    run([a, b], clock, 30)
    a.scheduler.close()
    a.running = False
    stopped_at = clock.monotonic()
    run([a, b], clock, 150)
    first_b = min(t for _, t in b.sent)
    assert first_b - stopped_at <= LEASE_S / 4 + INTERVALS["relay"]
    with b.scheduler.lease.engine.connect() as conn:
        assert conn.execute(select(leases.c.holder)).scalar_one() == "b"
    check_once_per_slot([a, b])


def test_a_lease_lost_between_look_and_send_sends_nothing(two_beats: tuple[Clock, Beat, Beat]) -> None:
    """The fence before each send is what counts: a lease taken away after the last look stops the
    very next send."""
    clock, a, b = two_beats
    run([a, b], clock, 12)
    with a.scheduler.lease.engine.begin() as conn:
        conn.execute(update(leases).values(holder="someone-else", token=leases.c.token + 1))
    sent = len(a.sent)
    with capture_logs() as logs:
        run([a], clock, 12.5 + LEASE_S / 4 - 0.5)
    assert len(a.sent) == sent
    assert not any(entry["event"] == "beat.sent" for entry in logs)
