"""Child processes for the shared budget and breaker tests (spawned: each its own Redis connection)."""

from __future__ import annotations

import time

import redis

from connectors.breaker import Breaker
from connectors.budget import Budget, Limit, Priority
from schemas.errors import CircuitOpen

LIMITS = (Limit.window("second", 20, 1.0), Limit.window("three", 45, 3.0))
PROBE_INTERVAL_S = 1.0


def spend(url: str, account: str, target: int) -> None:
    """Take from the shared budget until `target` admissions in all; push each admission's time."""
    client = redis.Redis.from_url(url)
    last = [0.0]

    def clock() -> float:  # the time the script used, kept to count windows exactly
        last[0] = time.time()
        return last[0]

    budget = Budget(client, "bench", account, LIMITS, clock=clock)
    while int(client.get(f"{account}:count") or 0) < target:
        wait_s = budget.acquire(priority=Priority.BACKFILL)
        if wait_s:
            time.sleep(wait_s)
            continue
        client.rpush(f"{account}:times", repr(last[0]))
        client.incr(f"{account}:count")


def breaker(url: str, account: str) -> Breaker:
    return Breaker(
        redis.Redis.from_url(url), "bench", account, failure_threshold=1, open_interval_s=PROBE_INTERVAL_S
    )


def race(url: str, account: str, tries: int) -> None:
    """Wait for the start signal, then ask an open breaker for a ticket `tries` times (Redis TIME)."""
    client = redis.Redis.from_url(url)
    gate = breaker(url, account)
    client.incr(f"{account}:ready")
    while not client.exists(f"{account}:go"):
        time.sleep(0.005)
    for _ in range(tries):
        try:
            ticket = gate.enter()
        except CircuitOpen:
            client.rpush(f"{account}:seen", "open")
        else:
            client.rpush(f"{account}:seen", "probe" if ticket.probe else "closed")
