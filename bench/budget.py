"""The shared rate budget against a limiter-enforcing server: `python -m bench.budget`.

Two worker processes call one vendor account through `connectors.http.VendorClient`, sharing one
`connectors.budget.Budget` in Redis (Redis TIME as the clock, as in production), against
`bench.limited_app` (a fixed window of LIMIT requests per second, 429 + Retry-After beyond it).
Side by side: one plain sequential client that calls as fast as it can and sleeps `Retry-After` on
each 429. Reported per client: requests admitted per second, utilisation of the allowed rate
(admitted ÷ (LIMIT × seconds)) and violations (requests the server had to refuse). Goal for the
budget: utilisation ≥ 90 % with 0 violations.

Redis: HOOKYARD_TEST_REDIS or --redis (default redis://127.0.0.1:6379); the keys it writes carry a
random account name and are deleted afterwards. Results also go to bench/results/budget.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import redis
import structlog

from bench.waiting import free_port, wait_for

RESULTS = Path(__file__).resolve().parent / "results"
WORKERS = 2
WARM_UP_S = 3.0  # spawned workers import and connect before the common start


def budget_worker(
    base_url: str, redis_url: str, account: str, limit: int, start_at: float, seconds: float, out: Any
) -> None:
    """One worker process: call through the shared budget from `start_at` for `seconds`."""
    from connectors.budget import Budget, Limit, Priority
    from connectors.http import VendorClient, make_http_client

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    budget = Budget(redis.Redis.from_url(redis_url), "bench", account, [Limit.window("second", limit, 1.0)])
    client = VendorClient("bench", account, base_url, budget=budget, http=make_http_client(), max_wait_s=60)
    ok = 0
    time.sleep(max(0.0, start_at - time.time()))
    while time.time() < start_at + seconds:
        client.call("GET", "/items", priority=Priority.BACKFILL)
        ok += 1
    out.put(ok)


def naive_client(base_url: str, start_at: float, seconds: float) -> int:
    """What teams write by hand: call in a loop, sleep Retry-After on a 429."""
    ok = 0
    with httpx.Client(base_url=base_url) as client:
        time.sleep(max(0.0, start_at - time.time()))
        while time.time() < start_at + seconds:
            response = client.get("/items")
            if response.status_code == 429:
                time.sleep(float(response.headers.get("retry-after", "1")))
            else:
                ok += 1
    return ok


def measure(base_url: str, phase: str, seconds: float, limit: int, run: Any) -> dict[str, Any]:
    httpx.post(f"{base_url}/reset")
    started = time.time()
    run()
    stats = httpx.get(f"{base_url}/stats").json()
    allowed = limit * seconds
    return {
        "phase": phase,
        "seconds": seconds,
        "admitted": stats["admitted"],
        "admitted_per_s": round(stats["admitted"] / seconds, 1),
        "utilisation": round(stats["admitted"] / allowed, 3),
        "violations": stats["violations"],
        "wall_s": round(time.time() - started, 1),
    }


def run(limit: int, seconds: float, redis_url: str) -> dict[str, Any]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "BENCH_LIMIT": str(limit), "BENCH_WINDOW_S": "1.0"}
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.limited_app:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen(argv, env=env)
    account = f"bench-{secrets.token_hex(4)}"
    store = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: httpx.get(f"{base_url}/stats").is_success, timeout=30, what="the limited app")
        spawn = multiprocessing.get_context("spawn")
        queue = spawn.Queue()

        def two_workers() -> None:
            start_at = time.time() + WARM_UP_S
            args = (base_url, redis_url, account, limit, start_at, seconds, queue)
            workers = [spawn.Process(target=budget_worker, args=args) for _ in range(WORKERS)]
            for worker in workers:
                worker.start()
            counts = [queue.get(timeout=seconds + 60) for _ in workers]
            for worker in workers:
                worker.join(timeout=30)
            if any(worker.exitcode != 0 for worker in workers) or len(counts) != WORKERS:
                raise RuntimeError("a budget worker failed")

        budget = measure(base_url, f"budget ({WORKERS} processes, shared)", seconds, limit, two_workers)
        naive = measure(
            base_url,
            "naive (1 process, sleeps on 429)",
            seconds,
            limit,
            lambda: naive_client(base_url, time.time(), seconds),
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
        for key in store.scan_iter(f"*{account}*"):
            store.delete(key)
    return {"limit_per_s": limit, "phases": [budget, naive]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.budget", description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=50, help="the server's limit, requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each client runs")
    parser.add_argument(
        "--redis", default=os.environ.get("HOOKYARD_TEST_REDIS", "redis://127.0.0.1:6379"), help="Redis URL"
    )
    args = parser.parse_args(argv)
    results = run(args.limit, args.seconds, args.redis)
    print(f"\nshared rate budget vs a {args.limit}/s fixed-window server, {args.seconds:g} s each")
    print(f"{'client':40} {'admitted/s':>10} {'utilisation':>11} {'violations':>10}")
    for phase in results["phases"]:
        print(
            f"{phase['phase']:40} {phase['admitted_per_s']:>10} {phase['utilisation']:>11.1%} "
            f"{phase['violations']:>10}"
        )
    budget = results["phases"][0]
    verdict = "PASS" if budget["utilisation"] >= 0.9 and budget["violations"] == 0 else "MISS"
    print(f"goal (budget: utilisation >= 90 %, 0 violations): {verdict}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "budget.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
