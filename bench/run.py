"""Orchestration: one fresh stack, the phases in order, a table on stdout, JSON on disk."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import redis
from sqlalchemy import text

RESULTS = Path(__file__).resolve().parent / "results"
PHASES = ("ceiling", "ingress", "workers", "e2e", "dev", "rules", "fetch", "scale")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--only", default=",".join(PHASES), help=f"comma-separated subset of {PHASES}")
    p.add_argument("--quick", action="store_true", help="short phases: a smoke run, not numbers to quote")
    p.add_argument("--saturation-s", type=float, default=10.0, help="measured seconds at saturation")
    p.add_argument("--rate-s", type=float, default=8.0, help="seconds per fixed offered rate")
    p.add_argument("--rates", default="500,2000,5000", help="offered rates (req/s)")
    p.add_argument("--sides", default="hookyard,baseline", help="which ingresses to measure")
    p.add_argument("--connections", type=int, default=64, help="connections at saturation")
    p.add_argument("--events", type=int, default=20000, help="events preloaded for the worker phase")
    p.add_argument("--concurrency", type=int, default=2, help="worker processes")
    p.add_argument(
        "--worker-window-s", type=float, default=15.0, help="measure worker throughput over at most this long"
    )
    p.add_argument("--e2e-rate", type=int, default=500)
    p.add_argument("--e2e-s", type=float, default=60.0)
    p.add_argument(
        "--e2e-drain-s",
        type=float,
        default=60.0,
        help="after the e2e load, wait at most this long for the backlog",
    )
    p.add_argument("--dev-rate", type=int, default=300, help="offered rate for `hookyard dev` (req/s)")
    p.add_argument("--dev-rate-s", type=float, default=20.0, help="seconds at --dev-rate")
    p.add_argument(
        "--dev-drain-s", type=float, default=120.0, help="dev: wait at most this long for a backlog"
    )
    p.add_argument(
        "--dev-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dev: an environment variable for `hookyard dev` (to compare settings)",
    )
    p.add_argument("--storm", type=int, default=1000, help="distinct deliveries in the redelivery storm")
    p.add_argument("--rules-events", type=int, default=5000, help="events for the rules throughput phase")
    p.add_argument(
        "--rules-window-s", type=float, default=60.0, help="measure the rules phase over at most this long"
    )
    p.add_argument("--scale-s", type=float, default=8.0, help="scale: measured seconds per ingress step")
    p.add_argument("--scale-events", type=int, default=6000, help="scale: events per worker step")
    p.add_argument(
        "--scale-window-s",
        type=float,
        default=40.0,
        help="scale: measure a worker step over at most this long",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="instead of the benchmark: py-spy profiles of the ingress and the worker",
    )
    p.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    args = p.parse_args(argv)
    if args.quick:
        args.saturation_s, args.rate_s, args.events, args.e2e_s, args.storm = 3.0, 3.0, 2000, 5.0, 200
        args.worker_window_s, args.e2e_drain_s = 5.0, 20.0
        args.rules_events, args.rules_window_s = 1000, 20.0
        args.scale_s, args.scale_events, args.scale_window_s = 3.0, 1500, 20.0
    return args


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }


def services(stack: Any) -> dict[str, str]:
    with stack.engine.connect() as conn:
        pg = conn.execute(text("SHOW server_version")).scalar_one()
        fsync = conn.execute(text("SHOW synchronous_commit")).scalar_one()
    client = redis.Redis.from_url(stack.redis_url(10))
    info = client.info("server")
    persistence = client.config_get("appendonly")
    client.close()
    return {
        "postgres": f"PostgreSQL {pg} (synchronous_commit={fsync})",
        "redis": f"{info['redis_version']} (appendonly={persistence.get('appendonly')})",
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    only = {p.strip() for p in args.only.split(",") if p.strip()}
    started = time.perf_counter()
    log_dir = RESULTS / "logs"
    shutil.rmtree(log_dir, ignore_errors=True)

    from bench.procs import Sampler
    from bench.stack import Stack

    sampler = Sampler()
    stack = Stack(root=log_dir, sampler=sampler)
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    try:
        stack.open()
        # the orchestrator publishes into Hookyard's queue itself (worker phase): same settings
        os.environ.update({k: v for k, v in stack.env().items() if k.startswith("HOOKYARD_")})
        from events.settings import get_settings

        get_settings.cache_clear()
        from bench import phases
        from bench.stack import dumps

        results["machine"].update(services(stack))
        log(f"stack ready: database {stack.db_name}, Redis indexes 10-12, logs in {log_dir}")
        sampler.start()
        if args.profile:
            from bench import profile

            result = profile.run(
                stack,
                seconds=args.saturation_s,
                events=args.events,
                concurrency=args.concurrency,
                out_dir=RESULTS / "profile",
                log=log,
            )
            (RESULTS / "profile" / "summary.json").write_text(dumps(result) + "\n")
            profile.print_summary(result)
            return
        if "ceiling" in only:
            results["loadgen_ceiling"] = phases.loadgen_ceiling(
                stack, seconds=min(args.saturation_s, 5.0), connections=args.connections, log=log
            )
        if "ingress" in only:
            rates = [int(r) for r in args.rates.split(",") if r]
            results["ingress"] = {}
            for which in [s for s in ("hookyard", "baseline") if s in args.sides.split(",")]:
                log(f"ingress: {which}")
                results["ingress"][which] = phases.ingress(
                    stack,
                    which,
                    saturation_s=args.saturation_s,
                    rate_s=args.rate_s,
                    rates=rates,
                    connections=args.connections,
                    log=log,
                )
        if "workers" in only:
            log(f"workers: {args.events} events, concurrency {args.concurrency}")
            results["workers"] = phases.workers(
                stack, count=args.events, concurrency=args.concurrency, window_s=args.worker_window_s, log=log
            )
        if "e2e" in only:
            log(f"end to end: {args.e2e_rate}/s for {args.e2e_s} s, then a redelivery storm")
            results["e2e"] = phases.end_to_end(
                stack,
                rate=args.e2e_rate,
                seconds=args.e2e_s,
                concurrency=args.concurrency,
                storm_deliveries=args.storm,
                storm_copies=5,
                drain_s=args.e2e_drain_s,
                log=log,
            )
        if "dev" in only:
            from bench import dev

            if "baseline" not in results.get("ingress", {}):
                log("baseline saturation (the dev ingress target is relative to it)")
                results.setdefault("ingress", {})["baseline"] = phases.ingress(
                    stack,
                    "baseline",
                    saturation_s=args.saturation_s,
                    rate_s=args.rate_s,
                    rates=[],
                    connections=args.connections,
                    log=log,
                )
            log(f"dev: hookyard dev at {args.dev_rate}/s for {args.dev_rate_s} s, then at saturation")
            results["dev"] = dev.run(
                stack,
                rate=args.dev_rate,
                rate_s=args.dev_rate_s,
                saturation_s=args.saturation_s,
                connections=args.connections,
                drain_s=args.dev_drain_s,
                env=dict(item.split("=", 1) for item in args.dev_env),
                log=log,
            )
        if "rules" in only:
            from bench import rules as rules_matching
            from bench import rules_e2e

            log("rules: matching cost per event with 10, 100 and 1,000 rules")
            results["rules"] = {"matching": [rules_matching.measure(n) for n in rules_matching.SIZES]}
            log(f"rules: {args.rules_events} events through the workers, 5 matching rules vs none")
            results["rules"]["throughput"] = rules_e2e.throughput(
                stack,
                count=args.rules_events,
                concurrency=args.concurrency,
                window_s=args.rules_window_s,
                log=log,
            )
        if "fetch" in only:
            from bench import fetch

            log(f"fetch: {fetch.UPDATES:,} webhooks on {fetch.ORDERS} orders, fetched from a fake Shopify")
            results["fetch"] = fetch.run(stack, log=log)
        if "scale" in only:
            from bench import scale

            log("scale: 1, 2 and 4 ingress processes, then 1, 2 and 4 worker nodes")
            results["scale"] = scale.run(
                stack,
                seconds=args.scale_s,
                events=args.scale_events,
                window_s=args.scale_window_s,
                connections=args.connections,
                log=log,
            )
    finally:
        sampler.stop()
        stack.close()
        log(f"cleaned up: dropped {stack.db_name}, flushed Redis indexes 10-12")

    from bench.report import table, targets

    results["memory_peak_rss"] = sampler.peak_rss
    results["targets"] = targets(results)
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(results) + "\n")
    print(table(results))
    print(f"\n(wrote {args.out}; whole run {results['elapsed_s']} s)")
