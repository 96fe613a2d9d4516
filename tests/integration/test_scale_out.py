"""Scale-out on one machine: two ingress processes and two worker nodes (their own Celery names and
queue groups) on one PostgreSQL and one Redis, under load, one node SIGKILLed mid-run."""

from __future__ import annotations

import base64
import os
import signal
import threading

import httpx
import pytest
from sqlalchemy import func, select

from events.db import events, records
from tests.integration.harness import Stack, wait_for
from tests.integration.test_beat_leader import lines

pytestmark = pytest.mark.integration

DELIVERIES = 400
SOURCES = {"shop": "shopify", "pay": "stripe"}
VENDOR_QUEUES = "hookyard.shopify,hookyard.stripe"


def post_all(stack: Stack, ports: list[int], count: int, answers: list[int]) -> None:
    """`count` deliveries, alternating ingress and source; the status of each answer."""
    with httpx.Client(timeout=30) as client:
        for n in range(count):
            source = list(SOURCES)[n % 2]
            req = stack.sample(source, SOURCES[source])
            url = f"http://127.0.0.1:{ports[n // 2 % 2]}/webhooks/{source}"
            answers.append(client.post(url, content=req.body, headers=req.headers).status_code)


def test_two_ingresses_two_worker_nodes_one_killed(pg_stack: Stack) -> None:
    """400 deliveries over two ingresses; node `all` (every queue, beat embedded) and node `vendors`
    (the vendor queues only) share the work; `vendors` is SIGKILLed mid-run. Every delivery is
    answered 2xx, stored once, processed once (each order and payment record at version 1)."""
    pg_stack.secrets["pay"] = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    pg_stack.write_config(SOURCES)
    ports = []
    for _ in range(2):
        pg_stack.start_web()
        ports.append(pg_stack.port)
    pg_stack.start_worker("--hostname", "all@%h")
    victim = pg_stack.start_worker("--hostname", "vendors@%h", "--queues", VENDOR_QUEUES, beat=False)

    answers: list[int] = []
    threads = [
        threading.Thread(target=post_all, args=(pg_stack, ports, DELIVERIES // 4, answers)) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: lines(victim, "event.processed"), timeout=60, what="node vendors at work")
        victim.kill(signal.SIGKILL)
    finally:
        for thread in threads:
            thread.join(timeout=120)
    assert answers == [200] * DELIVERIES

    pg_stack.wait_all_done(DELIVERIES, timeout=90)
    with pg_stack.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == DELIVERIES
        versions = dict(
            conn.execute(
                select(records.c.kind, func.max(records.c.version))
                .where(records.c.kind.in_(("order", "payment")))
                .group_by(records.c.kind)
            ).all()
        )
        per_kind = dict(
            conn.execute(
                select(records.c.kind, func.count())
                .where(records.c.kind.in_(("order", "payment")))
                .group_by(records.c.kind)
            ).all()
        )
    assert versions == {"order": 1, "payment": 1}  # nothing applied twice
    assert per_kind == {"order": DELIVERIES // 2, "payment": DELIVERIES // 2}  # nothing lost
