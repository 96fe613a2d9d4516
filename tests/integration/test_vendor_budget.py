"""The rate budget and the circuit breaker shared by real OS processes through a real Redis."""

from __future__ import annotations

import multiprocessing
import secrets

import pytest
import redis

from bench.waiting import wait_for
from connectors.budget import JITTER_S
from connectors.keys import breaker_key
from tests.helpers import most_in_span
from tests.integration import budget_workers

pytestmark = pytest.mark.integration

SPAWN = multiprocessing.get_context("spawn")


def run(target: object, args: tuple[object, ...], count: int) -> None:
    children = [SPAWN.Process(target=target, args=args) for _ in range(count)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0, f"worker exited with {child.exitcode}"


def test_two_processes_never_exceed_the_shared_limits(redis_url: str) -> None:
    """Two processes draining one budget: no span of any limit's period admits more than its count."""
    account = f"shared-{secrets.token_hex(3)}"
    target = 90
    run(budget_workers.spend, (redis_url, account, target), count=2)
    client = redis.Redis.from_url(redis_url)
    times = sorted(float(t) for t in client.lrange(f"{account}:times", 0, -1))
    assert len(times) >= target
    assert most_in_span(times, 1.0 + JITTER_S) <= 20
    assert most_in_span(times, 3.0 + JITTER_S) <= 45
    per_window: dict[int, int] = {}
    for t in times:
        per_window[int(t)] = per_window.get(int(t), 0) + 1
    assert max(per_window.values()) <= 20  # the vendor's epoch-aligned windows agree


def test_processes_racing_on_an_open_breaker_let_one_probe_through(redis_url: str) -> None:
    """Six processes ask an open breaker, due for its probe, 20 times each: exactly one probe."""
    account = f"race-{secrets.token_hex(3)}"
    client = redis.Redis.from_url(redis_url)
    gate = budget_workers.breaker(redis_url, account)
    gate.record(gate.enter(), ok=False)  # open

    def redis_now() -> float:
        seconds, micros = client.time()
        return seconds + micros / 1e6

    children = [SPAWN.Process(target=budget_workers.race, args=(redis_url, account, 20)) for _ in range(6)]
    for child in children:
        child.start()
    wait_for(lambda: int(client.get(f"{account}:ready") or 0) == 6, timeout=60, what="six racers ready")
    due = float(client.hget(breaker_key("bench", account), "next_probe_at") or 0)
    wait_for(lambda: redis_now() >= due, timeout=10, what="the probe to be due")
    client.set(f"{account}:go", 1)
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    seen = [s.decode() for s in client.lrange(f"{account}:seen", 0, -1)]
    assert len(seen) == 6 * 20
    assert seen.count("probe") == 1
    assert seen.count("open") == 6 * 20 - 1
