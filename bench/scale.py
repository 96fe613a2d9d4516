"""The scaling curve (`python -m bench --only scale`): accepted events/s with 1, 2 and 4 ingress
processes, processed events/s with 1, 2 and 4 worker nodes, on one PostgreSQL and one Redis, and
what each event costs: CPU of our processes and of this database's PostgreSQL backends, commits,
and bytes the database grew by. Those per-event costs are what the paper projection in
BENCHMARKS.md multiplies out (more cores, a PostgreSQL primary's write ceiling).

Ingress processes are `hookyard web --workers N` (uvicorn's processes on one port, as a deployment
runs them behind one Service); worker nodes are separate `hookyard worker` processes with their own
Celery node names and one pool process each, consuming the same vendor queue.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psutil
import redis
from sqlalchemy import text

from bench.phases import HOOKYARD_QUEUE, _drain, fast_publish, load, preload_inbox
from bench.procs import CpuMeter, Proc, wait_for
from bench.stack import HOOKYARD_DB, PY, Stack

STEPS = (1, 2, 4)


def backends(stack: Stack) -> list[psutil.Process]:
    """PostgreSQL backends serving this benchmark's database (their process title names it)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if (proc.info["name"] or "").startswith("postgres") and stack.db_name in " ".join(
                proc.info["cmdline"] or []
            ):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def db_counters(stack: Stack) -> dict[str, int]:
    """Commits in this database and its size on disk (tables and indexes, not WAL)."""
    with stack.engine.connect() as conn:
        commits = conn.execute(
            text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        ).scalar_one()
        size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    return {"commits": int(commits), "bytes": int(size)}


@contextmanager
def db_cost(stack: Stack, out: dict[str, Any]) -> Iterator[None]:
    """Commits and database growth over the block (stats reach pg_stat_database within a second)."""
    before = db_counters(stack)
    yield
    time.sleep(1.0)
    after = db_counters(stack)
    out["db"] = {k: after[k] - before[k] for k in before}


def per_event(cores: dict[str, float], seconds: float, events: int) -> dict[str, float]:
    """CPU milliseconds per event for each role metered."""
    if not events:
        return {}
    return {role: round(used * seconds / events * 1000, 3) for role, used in cores.items()}


def ingress_step(stack: Stack, processes: int, seconds: float, connections: int, log: Any) -> dict[str, Any]:
    stack.reset_data()
    proc, port = stack.start_hookyard_web(workers=processes)
    try:
        out: dict[str, Any] = {"processes": processes}
        warmup = 2.0
        pre = {"mode": "closed", "connections": connections, "warmup_s": 0.0, "duration_s": 1.0, "pool": 8000}
        load(stack, port, pre, {"server": proc})  # every process opens its database connections
        pre_stored = stack.count_events()
        with db_cost(stack, out):
            res = load(
                stack,
                port,
                {
                    "mode": "closed",
                    "connections": connections,
                    "warmup_s": warmup,
                    "duration_s": seconds,
                    "pool": int(6000 * (seconds + warmup)),
                },
                {"server": proc, "postgres (this db)": backends(stack)},
            )
        stored = stack.count_events() - pre_stored
        out.update(
            accepted_per_s=res["ok_per_s"],
            p99_ms=res["p99_ms"],
            errors=res["errors"],
            answered_2xx=res["ok_total"],
            stored=stored,
            cpu_cores=res["cpu_cores"],
            cpu_ms_per_event=per_event(res["cpu_cores"], warmup + seconds, res["ok_total"]),
        )
        out["db_per_event"] = {k: round(v / max(stored, 1), 2) for k, v in out["db"].items()}
        log(
            f"  ingress ×{processes}: {res['ok_per_s']:,.0f} accepted/s, p99 {res['p99_ms']} ms, "
            f"stored {stored:,} of {res['ok_total']:,} 2xx; cores {res['cpu_cores']}"
        )
        return out
    finally:
        stack.stop(proc)


def start_nodes(stack: Stack, nodes: int) -> list[Proc]:
    procs = []
    for n in range(nodes):
        argv = [PY, "-m", "ops.cli", "worker", "--concurrency", "1", "--queues", HOOKYARD_QUEUE]
        procs.append(stack.spawn(f"hookyard-worker-node{n + 1}", [*argv, "--hostname", f"node{n + 1}@%h"]))
    for proc in procs:
        wait_for(lambda p=proc: b"ready." in p.log.read_bytes(), timeout=90, what=f"{proc.role} ready")
    return procs


def worker_step(stack: Stack, nodes: int, count: int, window_s: float, log: Any) -> dict[str, Any]:
    """Preload `count` events and their messages, hold the messages aside while the nodes start, put
    them back at once, and measure from the first message taken until all are done."""
    from events.queue import PROCESS_TASK
    from events.queue import app as hookyard_app
    from events.settings import get_settings

    stack.reset_data()
    ids = preload_inbox(stack, count)
    client = redis.Redis.from_url(stack.redis_url(HOOKYARD_DB))
    held = f"{HOOKYARD_QUEUE}.held"
    messages = fast_publish(
        hookyard_app, PROCESS_TASK, HOOKYARD_QUEUE, ids, client, get_settings().ids_per_message
    )
    client.rename(HOOKYARD_QUEUE, held)
    procs = start_nodes(stack, nodes)
    out: dict[str, Any] = {"nodes": nodes, "events": count}
    try:
        roles: dict[str, Proc | list[psutil.Process]] = {"workers": [p for w in procs for p in w.tree()]}
        roles["postgres (this db)"] = backends(stack)
        with db_cost(stack, out), CpuMeter(roles) as meter:
            client.rename(held, HOOKYARD_QUEUE)
            seconds, done = _drain(
                stack, HOOKYARD_DB, HOOKYARD_QUEUE, count, stack.count_done, window_s, messages
            )
    finally:
        client.close()
        for proc in procs:
            stack.stop(proc)
    out.update(
        done=done,
        seconds=round(seconds, 2),
        processed_per_s=round(done / seconds, 1),
        cpu_cores=meter.cores,
        cpu_ms_per_event=per_event(meter.cores, meter.wall_s, done),
    )
    out["db_per_event"] = {k: round(v / max(done, 1), 2) for k, v in out["db"].items()}
    log(
        f"  workers ×{nodes}: {out['processed_per_s']:,.0f} events/s ({done:,} in {seconds:.1f} s); "
        f"cores {meter.cores}"
    )
    return out


def run(
    stack: Stack, *, seconds: float, events: int, window_s: float, connections: int, log: Any
) -> dict[str, Any]:
    return {
        "ingress": [ingress_step(stack, n, seconds, connections, log) for n in STEPS],
        "workers": [worker_step(stack, n, events, window_s, log) for n in STEPS],
    }
