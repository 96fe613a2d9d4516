"""SIGTERM to real web, worker and beat processes: no 2xx lost, nothing left leased, work handed back."""

from __future__ import annotations

import signal
import threading
from typing import Any

import httpx
import pytest
from sqlalchemy import func, or_, select

from connectors import registry
from events.db import events, leases, records, utcnow
from tests.integration.harness import Process, Stack, wait_for
from tests.integration.test_beat_leader import lines

pytestmark = pytest.mark.integration


def leased(stack: Stack) -> int:
    """Events still held by some worker's lease."""
    with stack.engine.connect() as conn:
        held = or_(events.c.lease_token.is_not(None), events.c.state == "processing")
        return int(conn.execute(select(func.count()).select_from(events).where(held)).scalar_one())


def attempts(stack: Stack) -> list[int]:
    with stack.engine.connect() as conn:
        return [n for (n,) in conn.execute(select(events.c.attempts))]


def exited(proc: Process, timeout: float) -> int:
    """Wait for `proc` to exit on its own; its exit code."""
    return proc.popen.wait(timeout=timeout)


def test_worker_sigterm_hands_back_the_events_it_holds(pg_stack: Stack) -> None:
    """A worker whose tasks would hold their leases 30 s more gets SIGTERM on its main process alone
    (as Kubernetes sends it): it exits without waiting them out, every lease released and the attempt
    uncounted; the next worker processes each event once."""
    pg_stack.start_web()
    victim = pg_stack.start_worker(beat=False, HOOKYARD_WORKER__FAULT_DELAY_S="30")
    for _ in range(6):
        assert pg_stack.post("shop", pg_stack.sample("shop", "shopify")).status_code == 200
    wait_for(lambda: pg_stack.states().get("processing", 0) >= 2, timeout=30, what="events in processing")
    victim.popen.send_signal(signal.SIGTERM)
    assert exited(victim, timeout=20) == 0  # its tasks would have slept 30 s
    assert leased(pg_stack) == 0
    assert sum(line["events"] for line in lines(victim, "event.handed_back")) >= 2
    pg_stack.start_worker()
    pg_stack.wait_all_done(6, timeout=60)
    assert attempts(pg_stack) == [1] * 6  # the handed-back attempt is not counted
    assert sorted(pg_stack.record_versions())[:6] == [1] * 6


class Load:
    """Threads posting signed deliveries until told to stop or refused a connection; what was 2xx."""

    def __init__(self, stack: Stack, threads: int = 4) -> None:
        self.stack, self.ok, self.stop = stack, [], threading.Event()
        self.shopify = registry.get("shopify")
        self.threads = [threading.Thread(target=self._post) for _ in range(threads)]
        for thread in self.threads:
            thread.start()

    def _post(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                req = self.stack.sample("shop", "shopify")
                try:
                    resp = client.post(
                        f"{self.stack.url}/webhooks/shop", content=req.body, headers=req.headers
                    )
                except httpx.HTTPError:
                    return  # the ingress is gone: a vendor would retry later
                if resp.status_code == 200:
                    headers = {k.lower(): v for k, v in req.headers.items()}
                    [delivery] = self.shopify.parse(req.body, headers, {}).deliveries
                    self.ok.append(delivery.dedupe_key)

    def join(self) -> list[Any]:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        return self.ok


def test_sigterm_to_web_worker_and_beat_under_load(pg_stack: Stack) -> None:
    """Deliveries keep coming while web, worker and beat get SIGTERM (the whole process group, as
    systemd sends it): each exits cleanly, every delivery answered 2xx is stored, no event is left
    leased, the beat lease is given up; a new worker and beat then process everything once."""
    web = pg_stack.start_web()
    worker = pg_stack.start_worker(beat=False)
    beat = pg_stack.spawn("beat", "beat")
    wait_for(lambda: lines(beat, "beat.leader_acquired"), timeout=30, what="beat leading")
    load = Load(pg_stack)
    try:
        wait_for(lambda: len(load.ok) >= 150, timeout=60, what="deliveries under load")
        wait_for(lambda: pg_stack.states().get("done", 0) >= 20, timeout=60, what="the worker busy")
        for proc in (web, worker, beat):
            proc.kill(signal.SIGTERM)
    finally:
        answered = load.join()
    # uvicorn ends by re-raising the SIGTERM it handled (exit -15) once it has drained and stopped
    assert [proc.popen.returncode for proc in (web, worker, beat)] == [-signal.SIGTERM, 0, 0]
    assert lines(web, "ingress.stopped")
    with pg_stack.engine.connect() as conn:
        stored = {key for (key,) in conn.execute(select(events.c.dedupe_key))}
        lease = conn.execute(select(leases.c.expires_at)).scalar_one()
    assert set(answered) <= stored
    assert len(stored) >= len(answered) >= 150
    assert leased(pg_stack) == 0
    assert lease <= utcnow() and lines(beat, "beat.leader_released")

    pg_stack.start_worker()
    pg_stack.wait_all_done(len(stored), timeout=120)
    with pg_stack.engine.connect() as conn:
        orders = [v for (v,) in conn.execute(select(records.c.version).where(records.c.kind == "order"))]
    assert len(orders) == len(stored) and set(orders) == {1}  # each order applied once
