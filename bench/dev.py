"""The embedded default as a user runs it: `hookyard dev` (ingress, one worker with embedded beat,
SQLite for the database and the broker) in a directory of its own, fed through its own ingress.

Three measurements, in this order on one `hookyard dev`:
  paced       an open-loop rate (300/s) for a while: does the worker keep up? Latency received → done
              of those events, and the backlog left when the load stops.
  alone       the ingress as fast as it answers (closed loop) with the worker paused (SIGSTOP, taken
              while it holds no SQLite write lock), as the baseline is measured without a consumer;
              then the worker alone drains the backlog: events done per second until the last.
  together    the same load with the worker running, as a user bursting `hookyard dev` sees it:
              what the ingress takes and what the worker does meanwhile.

Every event is a signed Shopify order that went through the ingress, so the worker normalizes real
payloads and upserts their records (an order and a customer each).
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import Engine, func, select

from bench.phases import load, stored_all
from bench.procs import CpuMeter, Proc, wait_for
from bench.stack import Stack
from events.db import UNFINISHED, EventState, events, make_engine, records, utcnow

RECORDS_PER_EVENT = 2  # a Shopify order gives an order record and a customer record
MIN_DRAIN_S = 2.0


@dataclass
class Dev:
    proc: Proc
    port: int
    home: Path
    engine: Engine

    def role(self, name: str) -> list[psutil.Process]:
        """The `web` or `worker` child of `hookyard dev`, with its own children (the pool, beat)."""
        for child in psutil.Process(self.proc.pid).children():
            with contextlib.suppress(psutil.Error):
                if name in child.cmdline()[3:4]:  # python -m ops.cli <command> …
                    return [child, *child.children(recursive=True)]
        raise RuntimeError(f"hookyard dev has no {name} process (log {self.proc.log})")

    def roles(self) -> dict[str, Proc | list[psutil.Process]]:
        return {"dev-ingress": self.role("web"), "dev-worker": self.role("worker")}

    def count(self, *states: str) -> int:
        """Events in these states (all events without any)."""
        stmt = select(func.count()).select_from(events)
        if states:  # the (state, relay_at) index makes counting the unfinished cheap
            stmt = stmt.where(events.c.state.in_(states))
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def states(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return dict(conn.execute(select(events.c.state, func.count()).group_by(events.c.state)).all())

    def record_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(records)).scalar_one())

    def latency(self, since: datetime) -> dict[str, Any]:
        """received → processed of the events received since `since`; an unfinished one counts with
        its age so far (a lower bound), so a backlog raises the percentiles instead of hiding."""
        now = time.time()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(events.c.received_at, events.c.processed_at).where(events.c.received_at >= since)
            ).all()
        ms = sorted(
            ((done.timestamp() if done else now) - received.timestamp()) * 1000 for received, done in rows
        )

        def pct(q: float) -> float | None:
            return round(ms[min(len(ms) - 1, int(q * len(ms)))], 1) if ms else None

        return {
            "events": len(ms),
            "unfinished": sum(1 for _, done in rows if done is None),
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
            "max_ms": round(ms[-1], 1) if ms else None,
        }

    def write_locks_free(self) -> bool:
        """Whether a writer could start on the database and on the broker file right now."""
        for name in ("hookyard.db", "broker.db"):
            conn = sqlite3.connect(self.home / ".hookyard" / name, timeout=0.2, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            except sqlite3.OperationalError:
                return False
            finally:
                conn.close()
        return True

    @contextlib.contextmanager
    def worker_paused(self) -> Iterator[None]:
        """SIGSTOP the worker (main process, pool, beat) at a moment it holds no SQLite write lock,
        which would stall the ingress; SIGCONT afterwards."""
        tree = self.role("worker")
        for _ in range(100):
            _signal(tree, signal.SIGSTOP)
            if self.write_locks_free():
                break
            _signal(tree, signal.SIGCONT)
            time.sleep(0.05)
        else:
            raise RuntimeError("the dev worker kept holding a write lock")
        try:
            yield
        finally:
            _signal(tree, signal.SIGCONT)

    def wait_drained(self, timeout: float) -> tuple[float, int]:
        """Wait until no event is unfinished or `timeout` passes: (seconds waited, unfinished then)."""
        t0 = time.perf_counter()
        while (left := self.count(*UNFINISHED)) and time.perf_counter() - t0 < timeout:
            time.sleep(0.1)
        return time.perf_counter() - t0, left


def _signal(procs: list[psutil.Process], sig: int) -> None:
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(sig)


def start(stack: Stack, home: Path, log: Any, env: dict[str, str]) -> Dev:
    proc, port = stack.start_dev(home, **env)
    wait_for(lambda: b" ready." in proc.log.read_bytes(), timeout=60, what=f"the dev worker (log {proc.log})")
    log(f"  hookyard dev up on port {port} in {home}")
    return Dev(proc, port, home, make_engine(f"sqlite:///{home}/.hookyard/hookyard.db"))


def run(
    stack: Stack,
    *,
    rate: int,
    rate_s: float,
    saturation_s: float,
    connections: int,
    drain_s: float,
    env: dict[str, str],
    log: Any,
) -> dict[str, Any]:
    home = stack.root / "dev"
    home.mkdir(parents=True, exist_ok=True)
    dev = start(stack, home, log, env)
    out: dict[str, Any] = {"rate": rate, "rate_s": rate_s, "saturation_s": saturation_s, "env": env}
    try:
        roles = dev.roles()
        out["paced"] = paced(stack, dev, roles, rate=rate, seconds=rate_s, drain_s=drain_s)
        p, lat = out["paced"], out["paced"]["latency"]
        log(
            f"  dev @ {rate}/s offered: {p['http']['ok_per_s']:.0f} ok/s, http p99 {p['http']['p99_ms']} ms; "
            f"received→done p50 {lat['p50_ms']} p99 {lat['p99_ms']} ms over {lat['events']} events; "
            f"backlog at the end {p['backlog_at_end']}, drained {p['drained_after_s']} s later"
        )
        for name, paused in (("alone", True), ("together", False)):
            out[name] = saturation(
                stack,
                dev,
                roles,
                seconds=saturation_s,
                connections=connections,
                drain_s=drain_s,
                paused=paused,
            )
            sat, drain = out[name]["ingress"], out[name]["drain"]
            log(
                f"  dev {name}: ingress {sat['ok_per_s']:.0f} ok/s, p99 {sat['p99_ms']} ms, errors "
                f"{sat['errors']}, {sat['stored']} stored of {sat['ok_total']} answered 2xx, "
                f"{sat['done_during_load']} done meanwhile; then {drain['per_s']} events/s drained "
                f"({drain['backlog']} in {drain['seconds']} s, {drain['left']} left)"
            )
        out["states"] = dev.states()
        out["records"] = dev.record_count()
        out["records_expected"] = RECORDS_PER_EVENT * out["states"].get(EventState.DONE, 0)
        log(f"  dev: states {out['states']}, records {out['records']} (expected {out['records_expected']})")
    finally:
        stack.stop(dev.proc)
        dev.engine.dispose()
    return out


def paced(
    stack: Stack, dev: Dev, roles: dict[str, Any], *, rate: int, seconds: float, drain_s: float
) -> dict[str, Any]:
    """Open loop at `rate`: does the worker keep up with the ingress?"""
    since = utcnow()
    spec = {"mode": "open", "rate": rate, "duration_s": seconds, "connections": 64}
    http = load(stack, dev.port, {**spec, "pool": int(rate * seconds * 1.02) + 100}, roles)
    backlog = dev.count(*UNFINISHED)
    waited, left = dev.wait_drained(drain_s)
    return {
        "http": http,
        "backlog_at_end": backlog,
        "drained_after_s": round(waited, 2),
        "left": left,
        "latency": dev.latency(since),
    }


def saturation(
    stack: Stack,
    dev: Dev,
    roles: dict[str, Any],
    *,
    seconds: float,
    connections: int,
    drain_s: float,
    paused: bool,
) -> dict[str, Any]:
    """Closed loop as fast as the ingress answers (the worker paused, or running); then the backlog
    left at the end drains with nothing else running."""
    before, done_before = dev.count(), dev.count(EventState.DONE)
    spec = {"mode": "closed", "connections": connections, "warmup_s": 2.0, "duration_s": seconds}
    with dev.worker_paused() if paused else contextlib.nullcontext():
        sat = load(stack, dev.port, {**spec, "pool": int(3000 * (seconds + 2))}, roles)
        stored = dev.count() - before
    done_during_load = dev.count(EventState.DONE) - done_before
    backlog = dev.count(*UNFINISHED)
    with CpuMeter(roles) as meter:
        waited, left = dev.wait_drained(drain_s)
    return {
        "worker_paused": paused,
        "ingress": {
            **sat,
            "stored": stored,
            "all_stored": stored_all(stored, sat["ok_total"], sat["uncounted_max"]),
            "done_during_load": done_during_load,
        },
        "drain": {
            "backlog": backlog,
            "seconds": round(waited, 2),
            # a backlog gone within a second or two says the worker kept up, not how fast it drains
            "per_s": round((backlog - left) / waited, 1) if waited >= MIN_DRAIN_S else None,
            "left": left,
            "cpu_cores": meter.cores,
        },
    }
