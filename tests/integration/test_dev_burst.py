"""`hookyard dev` under a burst: every event done once, also when its worker is SIGKILLed mid-burst.

No timing is asserted (the bench measures speed, BENCHMARKS.md): these wait for conditions.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import ColumnElement, Engine, func, select

from bench.payloads import signed_request, split
from events.db import AttemptOutcome, EventState, attempts, events, make_engine, records
from tests.integration.harness import Process, free_port, start_dev, wait_for

pytestmark = pytest.mark.integration

BURST = 300
FAST_RELAY = {  # a killed worker's events come back within seconds, not the default minutes
    "HOOKYARD_RELAY__INTERVAL_S": "1",
    "HOOKYARD_RELAY__GRACE_S": "3",
    "HOOKYARD_WORKER__LEASE_S": "5",
}


@dataclass
class Dev:
    """`hookyard dev` in a directory of its own: SQLite database and broker under .hookyard/."""

    home: Path
    secret: str
    process: Process | None = None
    port: int = 0

    def start(self, **env: str) -> None:
        self.port = free_port()
        environ = {k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_")}
        if self.process is not None:  # started again after it stopped: close the old one's log
            self.process.stop()
        self.process = start_dev(self.home, self.port, {**environ, **FAST_RELAY, **env})
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200,
            timeout=60,
            what=f"hookyard dev to answer (log {self.home / 'dev.log'})",
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # dev, web, worker, its pool and beat
            self.process.sink.close()

    def burst(self, n: int) -> list[int]:
        """n distinct signed Shopify orders, 8 at a time; the status codes."""
        url = f"http://127.0.0.1:{self.port}/webhooks/shop"

        def send(client: httpx.Client) -> int:
            headers, body = split(signed_request(self.secret.encode(), f"127.0.0.1:{self.port}"))
            headers = {k: v for k, v in headers.items() if k not in ("host", "content-length")}
            return client.post(url, content=body, headers=headers).status_code

        with httpx.Client(timeout=30) as client, ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda _: send(client), range(n)))

    def worker_tree(self) -> list[int]:
        """The worker child of `hookyard dev` and everything under it (pool processes, beat)."""
        assert self.process is not None
        worker = next(pid for pid in children(self.process.popen.pid) if b"worker" in cmdline(pid))
        tree, todo = [], [worker]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += children(pid)
        return tree


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Dev]:
    if not Path("/proc/self/task").exists():
        pytest.skip("needs /proc to find the dev worker's processes")
    secret = secrets.token_hex(16)
    (tmp_path / "hookyard.toml").write_text('[sources.shop]\nconnector = "shopify"\nsecrets = ["${SHOP}"]\n')
    (tmp_path / ".hookyard").mkdir()
    (tmp_path / ".hookyard" / "secrets.env").write_text(f"SHOP={secret}\n")
    stack = Dev(tmp_path, secret)
    yield stack
    stack.stop()


def database(dev: Dev) -> Engine:
    return make_engine(f"sqlite:///{dev.home}/.hookyard/hookyard.db")


def count(engine: Engine, *where: ColumnElement[bool]) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(events).where(*where)).scalar_one())


def assert_each_done_once(engine: Engine, n: int) -> None:
    """n events done; each order and customer written by exactly one event; one done attempt each."""
    with engine.connect() as conn:
        states: dict[str, int] = dict(
            conn.execute(select(events.c.state, func.count()).group_by(events.c.state)).all()
        )
        versions = [v for (v,) in conn.execute(select(records.c.version))]
        done_attempts = conn.execute(
            select(attempts.c.event_id, func.count())
            .where(attempts.c.outcome == AttemptOutcome.DONE)
            .group_by(attempts.c.event_id)
        ).all()
    assert states == {EventState.DONE: n}
    assert len(versions) == 2 * n and set(versions) == {1}  # an order and a customer per event
    assert len(done_attempts) == n and {c for _, c in done_attempts} == {1}


def test_a_burst_through_dev_is_all_processed(dev: Dev) -> None:
    """300 orders sent at once to `hookyard dev` are all accepted and all processed, each once."""
    dev.start()
    assert dev.burst(BURST) == [200] * BURST
    engine = database(dev)
    wait_for(
        lambda: count(engine, events.c.state == EventState.DONE) == BURST, timeout=120, what="the burst done"
    )
    assert_each_done_once(engine, BURST)
    engine.dispose()


def test_dev_worker_sigkilled_mid_burst_loses_nothing_and_repeats_nothing(dev: Dev) -> None:
    """The dev worker (its pool and beat too) is SIGKILLed with part of a burst done: `hookyard dev`
    stops; started again, the relay re-drives what the killed worker held, and each event is
    done exactly once."""
    dev.start(HOOKYARD_WORKER__FAULT_DELAY_S="1")  # holds each lease a moment: a kill lands mid-way
    assert dev.burst(BURST) == [200] * BURST
    engine = database(dev)
    wait_for(
        lambda: (
            count(engine, events.c.state == EventState.DONE) >= 20
            and count(engine, events.c.state == EventState.PROCESSING)
        ),
        timeout=120,
        what="part of the burst done, part held by the worker",
    )
    for pid in dev.worker_tree():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert dev.process is not None
    dev.process.popen.wait(timeout=60)  # dev notices its worker died and stops the ingress
    assert 0 < count(engine, events.c.state == EventState.DONE) < BURST
    dev.start()
    wait_for(
        lambda: count(engine, events.c.state == EventState.DONE) == BURST,
        timeout=180,
        what="every event done",
    )
    assert_each_done_once(engine, BURST)
    assert count(engine, events.c.attempts > 1) > 0  # some were held by the killed worker
    engine.dispose()
