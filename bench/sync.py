"""Syncs of one vendor account against its fake API: `python -m bench.sync`.

Two `hookyard worker` processes (one pool process each, queue `hookyard.sync`) sync one Shopify
account's two streams at once, `orders` and `customers`, from the fake Shopify (a real uvicorn
process, `tests/fakes/shopify.py`) into PostgreSQL, sharing the account's cost-point budget through
Redis. The fake's bucket and our budget have the same figures (CAPACITY points, RESTORE a second).
Reported:

- **utilisation**: the points the walks cost ÷ what the vendor allowed while they ran
  (CAPACITY + RESTORE × seconds, from a full bucket); a page costs 2 + nodes × node cost, Shopify's rule;
- **violations** (requests sent while the fake had told us to wait) and throttles, from the fake;
- **records/s** stored, side by side with a plain sequential client in one process that walks both
  streams with the same queries and page sizes, sleeps 1 s on each 429 (THROTTLED answered as 429),
  and stores nothing (it only maps the nodes): an upper bound for hand-written code.

Goal: utilisation ≥ 90 % with 0 violations. Services: HOOKYARD_TEST_PG (an admin URL that may create
databases) and HOOKYARD_TEST_REDIS, or --pg / --redis; the database is dropped afterwards and the
Redis index flushed. Results also go to bench/results/sync.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import create_engine, select, text

from bench.waiting import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CAPACITY, RESTORE = 2000, 1000  # points; Shopify Plus restores 1000 a second
NODE_COST = {"orders": 4, "customers": 1}  # connectors/shopify/sync.py: the node and its objects
PAGE = {"orders": 100, "customers": 250}
REDIS_DB = 14
TOKEN = "shpat_fake"


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def fake_shopify(count: int, log_dir: Path) -> Iterator[str]:
    port = free_port()
    config = {
        "counts": {"customers": count, "orders": count},
        "limits": {"bucket_size": float(CAPACITY), "restore_rate": float(RESTORE)},
        "throttle_status": 429,
    }
    argv = [
        sys.executable,
        "-m",
        "tests.fakes",
        "shopify",
        "--port",
        str(port),
        "--config",
        json.dumps(config),
    ]
    proc = start(argv, dict(os.environ), log_dir / "fake.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/_fake/stats").is_success, timeout=30, what="the fake Shopify")
        yield url
    finally:
        stop(proc)


@contextmanager
def database(admin_url: str) -> Iterator[str]:
    from events.migrate import upgrade

    name = f"bench_sync_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def hookyard_pair(fake_url: str, database_url: str, redis_url: str, root: Path) -> dict[str, Any]:
    """Two worker processes sync both streams at once; their runs' counts and the fake's stats."""
    from events.db import make_engine, sync_runs

    (root / "hookyard.toml").write_text(
        '[sources.shop]\nconnector = "shopify"\nsecrets = ["bench"]\n'
        f'[sources.shop.api]\nbase_url = "{fake_url}"\ntoken = "{TOKEN}"\n'
        f"limits = {{ points = {{ capacity = {CAPACITY}, restore_per_s = {RESTORE} }} }}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_")}
    env.update(
        HOOKYARD_CONFIG=str(root / "hookyard.toml"),
        HOOKYARD_SECRETS_FILE=str(root / "secrets.env"),
        HOOKYARD_DATABASE_URL=database_url,
        HOOKYARD_BROKER_URL=redis_url,
        HOOKYARD_SYNC__SLICE_S="3600",
        HOOKYARD_METRICS__DIR=str(root / "metrics"),
    )
    hookyard = [sys.executable, "-m", "ops.cli"]
    workers = [
        start(
            [*hookyard, "worker", "--concurrency", "1", "--queues", "hookyard.sync"],
            env,
            root / f"worker{i}.log",
        )
        for i in range(2)
    ]
    engine = make_engine(database_url)
    try:
        wait_for(
            lambda: all(b"ready." in (root / f"worker{i}.log").read_bytes() for i in range(2)),
            timeout=60,
            what="workers",
        )
        httpx.post(f"{fake_url}/_fake/reset")
        for stream in ("orders", "customers"):
            subprocess.run(
                [*hookyard, "sync", "run", "shop", stream, "--queue"],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            )

        def runs() -> list[Any]:
            with engine.connect() as conn:
                return list(conn.execute(select(sync_runs)))

        wait_for(
            lambda: len(runs()) == 2 and all(r.status != "running" for r in runs()),
            timeout=900,
            what="both runs",
        )
        found = runs()
    finally:
        for worker in workers:
            stop(worker)
        engine.dispose()
    seconds = (max(r.finished_at for r in found) - min(r.started_at for r in found)).total_seconds()
    points = sum(2 * r.pages + NODE_COST[r.stream] * r.records for r in found)
    stats = httpx.get(f"{fake_url}/_fake/stats").json()
    return {
        "client": "hookyard (2 worker processes, shared budget)",
        "statuses": sorted(r.status for r in found),
        "records": sum(r.applied for r in found),
        "seconds": round(seconds, 2),
        "points": points,
        "requests": stats["requests"],
        "throttled": stats["throttled"],
        "violations": stats["violations"],
    }


def naive(fake_url: str) -> dict[str, Any]:
    """One process walks both streams in turn and sleeps a second on every 429."""
    from connectors.shopify.sync import CUSTOMERS, ORDERS, PATH, QUERY, VERSION

    httpx.post(f"{fake_url}/_fake/reset")
    url = fake_url + PATH.format(**VERSION)
    records = points = 0
    started = time.time()
    with httpx.Client(headers={"X-Shopify-Access-Token": TOKEN}, timeout=30) as client:
        for collection in (ORDERS, CUSTOMERS):
            after = None
            while True:
                variables = {"first": PAGE[collection.root], "after": after, "query": None}
                response = client.post(
                    url, json={"query": QUERY % (collection.root, collection.fields), "variables": variables}
                )
                if response.status_code == 429:
                    time.sleep(1.0)
                    continue
                page = response.json()["data"][collection.root]
                for node in page["nodes"]:
                    records += len(collection.to_records(node))
                points += 2 + NODE_COST[collection.root] * len(page["nodes"])
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
    stats = httpx.get(f"{fake_url}/_fake/stats").json()
    return {
        "client": "naive (1 process, sleeps 1 s on 429, stores nothing)",
        "records": records,
        "seconds": round(time.time() - started, 2),
        "points": points,
        "requests": stats["requests"],
        "throttled": stats["throttled"],
        "violations": stats["violations"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sync", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=6000, help="orders, and as many customers")
    parser.add_argument(
        "--pg", default=os.environ.get("HOOKYARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--redis", default=os.environ.get("HOOKYARD_TEST_REDIS", "redis://127.0.0.1:6379"))
    args = parser.parse_args(argv)
    redis_url = f"{args.redis}/{REDIS_DB}"
    store = redis.Redis.from_url(redis_url)
    store.flushdb()
    root = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    try:
        with fake_shopify(args.count, root) as fake_url, database(args.pg) as database_url:
            phases = [hookyard_pair(fake_url, database_url, redis_url, root), naive(fake_url)]
    finally:
        store.flushdb()
    for phase in phases:
        allowed = CAPACITY + RESTORE * phase["seconds"]
        phase["utilisation"] = round(phase["points"] / allowed, 3)
        phase["records_per_s"] = round(phase["records"] / phase["seconds"], 1)
    print(
        f"\n{args.count} orders + {args.count} customers from a fake Shopify ({CAPACITY} points, {RESTORE}/s)"
    )
    heads = ("records/s", 9), ("seconds", 8), ("utilisation", 11), ("throttled", 9), ("violations", 10)
    print(f"{'client':54} " + " ".join(f"{name:>{width}}" for name, width in heads))
    for p in phases:
        print(
            f"{p['client']:54} {p['records_per_s']:>9} {p['seconds']:>8} {p['utilisation']:>11.1%} "
            f"{p['throttled']:>9} {p['violations']:>10}"
        )
    ours = phases[0]
    verdict = "PASS" if ours["utilisation"] >= 0.9 and ours["violations"] == 0 else "MISS"
    print(f"goal (hookyard: utilisation >= 90 %, 0 violations): {verdict}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sync.json").write_text(json.dumps({"count": args.count, "phases": phases}, indent=2))


if __name__ == "__main__":
    main()
