"""The circuit breaker's transitions on fakeredis with an injected clock (no wall-clock sleeps)."""

from __future__ import annotations

import itertools

import fakeredis
import pytest
from prometheus_client import REGISTRY

from connectors.breaker import Breaker, State, Ticket
from schemas.errors import CircuitOpen
from tests.helpers import SleepClock

THRESHOLD, INTERVAL_S, LEASE_S = 3, 30.0, 60.0


@pytest.fixture
def clock() -> SleepClock:
    """A clock the test moves."""
    return SleepClock()


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    """One Redis shared by every breaker of a test, as processes share one."""
    return fakeredis.FakeRedis()


def make(redis: fakeredis.FakeRedis, clock: SleepClock, account: str = "acct") -> Breaker:
    tokens = (f"t{n}" for n in itertools.count())
    return Breaker(
        redis,
        "vendor",
        account,
        failure_threshold=THRESHOLD,
        open_interval_s=INTERVAL_S,
        probe_lease_s=LEASE_S,
        clock=clock,
        token=lambda: next(tokens),
    )


def fail(breaker: Breaker, times: int) -> State:
    state = State.CLOSED
    for _ in range(times):
        state = breaker.record(breaker.enter(), ok=False)
    return state


def test_consecutive_failures_open_it(redis: fakeredis.FakeRedis, clock: SleepClock) -> None:
    """Threshold − 1 failures keep it closed; the threshold-th opens it and calls fail fast."""
    breaker = make(redis, clock)
    assert fail(breaker, THRESHOLD - 1) is State.CLOSED
    assert breaker.enter() == Ticket(State.CLOSED)
    assert fail(breaker, 1) is State.OPEN
    with pytest.raises(CircuitOpen) as caught:
        breaker.enter()
    assert caught.value.retry_after_s == pytest.approx(INTERVAL_S)


def test_a_success_resets_the_count(redis: fakeredis.FakeRedis, clock: SleepClock) -> None:
    """Failures must be consecutive: a success in between starts the count again."""
    breaker = make(redis, clock)
    fail(breaker, THRESHOLD - 1)
    breaker.record(breaker.enter(), ok=True)
    assert fail(breaker, THRESHOLD - 1) is State.CLOSED


def test_failures_from_other_processes_add_up(redis: fakeredis.FakeRedis, clock: SleepClock) -> None:
    """The count lives in Redis: failures seen by different processes open one breaker."""
    first, second = make(redis, clock), make(redis, clock)
    fail(first, THRESHOLD - 1)
    assert fail(second, 1) is State.OPEN
    with pytest.raises(CircuitOpen):
        first.enter()


def test_open_counts_down_to_exactly_one_probe(redis: fakeredis.FakeRedis, clock: SleepClock) -> None:
    """While open the wait shrinks; after the interval one caller probes and the rest still wait."""
    breaker, other = make(redis, clock), make(redis, clock)
    fail(breaker, THRESHOLD)
    clock.advance(INTERVAL_S - 10)
    with pytest.raises(CircuitOpen) as caught:
        other.enter()
    assert caught.value.retry_after_s == pytest.approx(10)
    clock.advance(10)
    probe = breaker.enter()
    assert probe.state is State.HALF_OPEN and probe.probe
    for _ in range(5):
        with pytest.raises(CircuitOpen, match="half_open") as caught:
            other.enter()
    assert caught.value.retry_after_s == pytest.approx(LEASE_S)


def test_probe_success_closes_it(redis: fakeredis.FakeRedis, clock: SleepClock) -> None:
    """The probe's success closes the breaker for everyone, with a fresh failure count."""
    breaker = make(redis, clock)
    fail(breaker, THRESHOLD)
    clock.advance(INTERVAL_S)
    assert breaker.record(breaker.enter(), ok=True) is State.CLOSED
    assert breaker.enter() == Ticket(State.CLOSED)
    assert fail(breaker, THRESHOLD - 1) is State.CLOSED


def test_probe_failure_opens_it_again(redis: fakeredis.FakeRedis, clock: SleepClock) -> None:
    """The probe's failure re-opens it for a whole interval: one probe per interval."""
    breaker = make(redis, clock)
    fail(breaker, THRESHOLD)
    clock.advance(INTERVAL_S + 5)
    assert breaker.record(breaker.enter(), ok=False) is State.OPEN
    with pytest.raises(CircuitOpen) as caught:
        breaker.enter()
    assert caught.value.retry_after_s == pytest.approx(INTERVAL_S)


def test_a_lost_probe_is_replaced_after_its_lease(redis: fakeredis.FakeRedis, clock: SleepClock) -> None:
    """A probe whose process died never reports; after its lease the next caller probes, and a late
    report from the lost probe changes nothing."""
    breaker = make(redis, clock)
    fail(breaker, THRESHOLD)
    clock.advance(INTERVAL_S)
    lost = breaker.enter()
    clock.advance(LEASE_S)
    second = breaker.enter()
    assert second.probe and second.probe != lost.probe
    assert breaker.record(lost, ok=True) is State.HALF_OPEN
    assert breaker.record(second, ok=True) is State.CLOSED


def test_stale_reports_do_not_move_an_open_breaker(redis: fakeredis.FakeRedis, clock: SleepClock) -> None:
    """Calls that began before it opened report late: neither a success nor a failure counts."""
    breaker = make(redis, clock)
    early = [breaker.enter() for _ in range(2)]
    fail(breaker, THRESHOLD)
    clock.advance(INTERVAL_S / 2)
    assert breaker.record(early[0], ok=True) is State.OPEN
    assert breaker.record(early[1], ok=False) is State.OPEN
    with pytest.raises(CircuitOpen) as caught:
        breaker.enter()
    assert caught.value.retry_after_s == pytest.approx(INTERVAL_S / 2)


def test_release_hands_the_probe_on(redis: fakeredis.FakeRedis, clock: SleepClock) -> None:
    """A probe that never reached the vendor gives its turn to the next caller at once."""
    breaker = make(redis, clock)
    fail(breaker, THRESHOLD)
    clock.advance(INTERVAL_S)
    breaker.release(breaker.enter())
    assert breaker.enter().probe


def test_state_gauge_follows_transitions(redis: fakeredis.FakeRedis, clock: SleepClock) -> None:
    """hookyard_breaker_state{vendor,account}: 0 closed, 2 open, 1 half-open."""
    breaker = make(redis, clock, account="gauge")

    def gauge() -> float | None:
        return REGISTRY.get_sample_value("hookyard_breaker_state", {"vendor": "vendor", "account": "gauge"})

    breaker.enter()
    assert gauge() == 0
    fail(breaker, THRESHOLD)
    assert gauge() == 2
    clock.advance(INTERVAL_S)
    breaker.enter()
    assert gauge() == 1


def test_redis_time_is_the_default_clock(redis: fakeredis.FakeRedis) -> None:
    """Without an injected clock the script reads Redis TIME."""
    breaker = Breaker(redis, "vendor", "acct", failure_threshold=1, open_interval_s=300)
    breaker.record(breaker.enter(), ok=False)
    with pytest.raises(CircuitOpen) as caught:
        breaker.enter()
    assert 299 < (caught.value.retry_after_s or 0) <= 300


@pytest.mark.parametrize(
    "settings",
    [{"failure_threshold": 0}, {"open_interval_s": 0}, {"probe_lease_s": -1}],
)
def test_bad_settings_refused(redis: fakeredis.FakeRedis, settings: dict[str, float]) -> None:
    """A breaker that could never open or never probe is a programming error."""
    with pytest.raises(ValueError):
        Breaker(redis, "vendor", "acct", **settings)  # type: ignore[arg-type]
