"""The shared rate budget: GCRA maths on fakeredis with an injected clock (no wall-clock sleeps)."""

from __future__ import annotations

import fakeredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from connectors.budget import (
    JITTER_S,
    VENDOR_LIMITS,
    Budget,
    Limit,
    Priority,
    Unit,
    limits_for,
)
from connectors.keys import budget_key
from schemas.errors import ConfigError, PermanentError, Throttled
from tests.helpers import SleepClock, most_in_span


@pytest.fixture
def clock() -> SleepClock:
    """A clock the test moves."""
    return SleepClock()


def budget(clock: SleepClock, *limits: Limit, account: str = "acct") -> Budget:
    return Budget(fakeredis.FakeRedis(), "vendor", account, limits, clock=clock)


def greedy(b: Budget, clock: SleepClock, until_s: float, **kwargs: object) -> list[float]:
    """Ask again and again, sleeping as told; the admission times up to `until_s` from now."""
    start, admitted = clock.now, []
    while clock.now - start < until_s:
        wait = b.acquire(**kwargs)  # type: ignore[arg-type]
        if wait == 0:
            admitted.append(clock.now)
        else:
            clock.advance(wait)
    return admitted


US = 1e-5  # stored times are rounded up to the microsecond, a few steps may add up


def test_window_paces_below_the_vendor_count() -> None:
    """A 10/s window (no jitter allowance) admits its catch-up burst of 2, then one per 1/9 s."""
    clock = SleepClock()
    b = budget(clock, Limit.window("second", 10, 1.0, jitter_s=0.0))
    assert [b.acquire(), b.acquire()] == [0.0, 0.0]
    assert b.acquire() == pytest.approx(1 / 9, abs=US)
    clock.advance(1 / 9 + US)
    assert b.acquire() == 0.0


def test_a_late_caller_catches_up() -> None:
    """A caller that wakes 5 ms after its turn still gets the next turn on time (no capacity lost)."""
    clock = SleepClock()
    b = budget(clock, Limit.window("second", 10, 1.0, jitter_s=0.0))
    b.acquire(), b.acquire()
    clock.advance(1 / 9 + 0.005)
    assert b.acquire() == 0.0
    assert b.acquire() == pytest.approx(1 / 9 - 0.005, abs=US)  # the next turn keeps its time


def test_two_windows_at_once_never_exceed_either(clock: SleepClock) -> None:
    """Klaviyo-like 10/s burst + 150/min steady: no span of either period (+jitter) holds more."""
    second = Limit.window("second", 10, 1.0)
    minute = Limit.window("minute", 150, 60.0, reserve=8)
    b = budget(clock, second, minute)
    times = greedy(b, clock, 180.0)
    assert most_in_span(times, 1.0 + JITTER_S) <= 10
    assert most_in_span(times, 60.0 + JITTER_S) <= 150
    assert len(times) >= 0.9 * 150 * 3  # and the steady window is used: ≥ 90 % of 3 minutes' worth


def test_epoch_aligned_windows_see_at_most_count(clock: SleepClock) -> None:
    """The vendor's own fixed windows (aligned to the epoch, like the fakes') never see more than count."""
    b = budget(clock, Limit.window("second", 25, 1.0, reserve=1))
    times = greedy(b, clock, 30.0)
    per_window: dict[int, int] = {}
    for t in times:
        per_window[int(t // 1)] = per_window.get(int(t // 1), 0) + 1
    assert max(per_window.values()) <= 25
    assert len(times) >= 0.9 * 25 * 30


def test_a_refusal_debits_no_limit(clock: SleepClock) -> None:
    """When one limit refuses, the others keep their state (all or nothing)."""
    redis = fakeredis.FakeRedis()
    big, small = Limit.window("big", 100, 1.0), Limit.window("small", 1, 10.0)
    b = Budget(redis, "vendor", "acct", (big, small), clock=clock)
    assert b.acquire() == 0.0
    before = redis.get(budget_key("vendor", "acct", "big"))
    assert b.acquire() > 9.0
    assert redis.get(budget_key("vendor", "acct", "big")) == before


def test_cost_debit_then_refund(clock: SleepClock) -> None:
    """Shopify points: debit the requested cost, refund what the answer did not use."""
    b = budget(clock, Limit.bucket("points", 100, 10))
    assert b.acquire(cost=80) == 0.0
    assert b.acquire(cost=30) == pytest.approx(1.0)  # (80 + 30 − 100) / 10 per s
    b.settle(refund=60)  # the query really cost 20
    assert b.acquire(cost=30) == 0.0


def test_a_negative_refund_takes_more(clock: SleepClock) -> None:
    """An answer that cost more than we debited moves the budget further out."""
    b = budget(clock, Limit.bucket("points", 100, 10))
    assert b.acquire(cost=50) == 0.0
    b.settle(refund=-20)
    assert b.acquire(cost=40) == pytest.approx(1.0)  # 50 + 20 + 40 − 100 = 10 points at 10/s


def test_reported_remaining_only_tightens(clock: SleepClock) -> None:
    """The vendor's currentlyAvailable applies when lower than ours; a higher one is ignored."""
    b = budget(clock, Limit.bucket("points", 100, 10))
    b.settle(remaining={"points": 10})  # another client of the shop spent 90
    assert b.acquire(cost=30) == pytest.approx(2.0)
    b.settle(remaining={"points": 100})  # in-flight calls may not have reached the vendor yet
    assert b.acquire(cost=30) == pytest.approx(2.0)


def test_backfills_leave_the_reserve_to_realtime(clock: SleepClock) -> None:
    """Backfills stop at the reserve; real-time work still goes at once and may use all of it."""
    b = budget(clock, Limit.bucket("points", 100, 10, reserve=20))
    for _ in range(8):
        assert b.acquire(cost=10, priority=Priority.BACKFILL) == 0.0
    assert b.acquire(cost=10, priority=Priority.BACKFILL) == pytest.approx(1.0)
    assert b.acquire(cost=20, priority=Priority.REALTIME) == 0.0
    assert b.acquire(cost=10, priority=Priority.REALTIME) == pytest.approx(1.0)
    assert b.acquire(cost=10, priority=Priority.BACKFILL) == pytest.approx(3.0)


def test_saturating_backfills_do_not_delay_realtime(clock: SleepClock) -> None:
    """While backfills use a window limit to the full, a real-time call is admitted without waiting."""
    b = budget(clock, Limit.window("minute", 200, 60.0, reserve=10))
    greedy(b, clock, 30.0, priority=Priority.BACKFILL)
    assert b.acquire(priority=Priority.REALTIME) == 0.0
    assert b.acquire(priority=Priority.BACKFILL) > 0.0


@pytest.mark.parametrize(("cost", "priority"), [(101, Priority.REALTIME), (81, Priority.BACKFILL)])
def test_a_debit_that_can_never_fit_is_permanent(clock: SleepClock, cost: float, priority: Priority) -> None:
    """A cost above the usable burst would wait forever: refused at once."""
    b = budget(clock, Limit.bucket("points", 100, 10, reserve=20))
    with pytest.raises(PermanentError, match="never fits"):
        b.acquire(cost=cost, priority=priority)


def test_request_limits_debit_one_and_cost_limits_the_cost(clock: SleepClock) -> None:
    """A request-counting limit debits 1 whatever the cost; a cost limit debits the cost."""
    b = budget(
        clock,
        Limit.window("calls", 2, 10.0, reserve=1, jitter_s=0),
        Limit.bucket("tokens", 1000, 1, unit=Unit.COST),
    )
    assert b.acquire(cost=300) == 0.0
    assert b.acquire(cost=300) == 0.0
    assert b.acquire(cost=300) == pytest.approx(10.0)  # the call window refuses, not the tokens


def test_optional_limits_apply_only_when_named(clock: SleepClock) -> None:
    """Zendesk's incremental bucket counts only the calls that name it."""
    b = budget(clock, *limits_for("zendesk"))
    assert [b.acquire(extra=("incremental",)) for _ in range(2)] == [0.0, 0.0]
    assert b.acquire(extra=("incremental",)) > 5.0  # 10/min
    assert b.acquire() == 0.0
    with pytest.raises(ValueError, match="no limit named"):
        b.acquire(extra=("nope",))


def test_redis_time_is_the_default_clock() -> None:
    """Without an injected clock the script reads Redis TIME (one clock for every machine)."""
    b = Budget(fakeredis.FakeRedis(), "vendor", "acct", [Limit.window("minute", 1, 60.0, jitter_s=0)])
    assert b.acquire() == 0.0
    assert 59.0 < b.acquire() <= 60.0


def test_wait_sleeps_then_raises_past_its_bound(clock: SleepClock) -> None:
    """wait() sleeps as told; a wait past the bound raises Throttled with retry_after_s."""
    b = budget(clock, Limit.window("second", 1, 1.0, jitter_s=0), account="waits")
    sample = {"vendor": "vendor", "account": "waits", "priority": "backfill"}
    before = metric("hookyard_budget_wait_seconds_total", sample)
    assert b.wait(priority=Priority.BACKFILL, max_wait_s=5, sleep=clock.sleep) == 0.0
    assert b.wait(priority=Priority.BACKFILL, max_wait_s=5, sleep=clock.sleep) == pytest.approx(1.0)
    assert clock.slept == [pytest.approx(1.0)]
    assert metric("hookyard_budget_wait_seconds_total", sample) - before == pytest.approx(1.0)
    with pytest.raises(Throttled) as caught:
        b.wait(max_wait_s=0.5, sleep=clock.sleep)
    assert caught.value.retry_after_s == pytest.approx(1.0)


def metric(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_keys_expire_when_the_budget_is_full_again(clock: SleepClock) -> None:
    """A key lives only until its limit would be full again: idle accounts cost no memory."""
    redis = fakeredis.FakeRedis()
    b = Budget(redis, "vendor", "acct", [Limit.bucket("points", 100, 10)], clock=clock)
    b.acquire(cost=50)
    ttl_ms = redis.pttl(budget_key("vendor", "acct", "points"))
    assert 0 < ttl_ms <= 5001  # until the bucket would be full again: 50 points at 10/s
    b.settle(refund=50)
    assert not redis.exists(budget_key("vendor", "acct", "points"))


def test_limits_for_applies_overrides_by_name() -> None:
    """A source replaces a default limit by name and may add its own; the rest stay."""
    plus = Limit.bucket("points", 10_000, 1000, reserve=500)
    extra = Limit.window("search", 20, 1.0)
    limits = {lim.name: lim for lim in limits_for("shopify", {"points": plus, "search": extra})}
    assert limits["points"] is plus and limits["search"] is extra
    assert limits["rest"] == dict((lim.name, lim) for lim in VENDOR_LIMITS["shopify"])["rest"]
    assert limits_for("github", {"search": extra}) == (extra,)
    with pytest.raises(ConfigError, match="no default rate limits"):
        limits_for("github")


@pytest.mark.parametrize(
    "make",
    [
        lambda: Limit("x", 0, 1),
        lambda: Limit("x", 1, 0.5),
        lambda: Limit("x", 1, 5, reserve=5),
        lambda: Limit.window("x", 5, 1.0, reserve=5),
        lambda: Limit.window("x", 5, 0.0),
    ],
)
def test_bad_figures_are_config_errors(make: object) -> None:
    """Impossible limits stop at load, not at the first call."""
    with pytest.raises(ConfigError):
        make()  # type: ignore[operator]


def test_repeated_limit_names_are_config_errors(clock: SleepClock) -> None:
    """Two limits of one account cannot share a name (they would share a key)."""
    with pytest.raises(ConfigError, match="repeat"):
        budget(clock, Limit.window("a", 5, 1.0), Limit.window("a", 10, 60.0))


@settings(max_examples=100, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.3), min_size=1, max_size=150),
    backfill=st.lists(st.booleans(), min_size=150, max_size=150),
    count=st.integers(min_value=2, max_value=12),
    reserve=st.integers(min_value=0, max_value=1),
)
def test_no_arrival_pattern_exceeds_a_window(
    gaps: list[float], backfill: list[bool], count: int, reserve: int
) -> None:
    """Whatever the arrival times and priorities, no span of period + jitter admits more than count."""
    clock = SleepClock()
    b = budget(clock, Limit.window("w", count, 1.0, reserve=reserve))
    admitted = []
    for gap, low in zip(gaps, backfill, strict=False):
        clock.advance(gap)
        if b.acquire(priority=Priority.BACKFILL if low else Priority.REALTIME) == 0:
            admitted.append(clock.now)
    assert most_in_span(admitted, 1.0 + JITTER_S) <= count
