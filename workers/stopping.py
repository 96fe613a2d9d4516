"""A worker asked to stop: each task finishes the item at hand and hands the rest back.

Celery's warm shutdown (SIGTERM to the worker) takes no more messages and waits for the tasks that
run. What a task holds is then given back rather than left to expire: the claimed rows it has not
started get their lease released, their attempt uncounted, and are published again at once
(`workers.leases.hand_back_statement`). A prefork child gets the request as SIGTERM, from the
supervisor (systemd and `kill -- -PGID` signal the whole group) or forwarded by the worker (a
Kubernetes pod's PID 1 alone gets it): while a task runs the signal only notes the request; an idle
child still stops at once, as before.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

_requested = False
_pool_child = False


def requested() -> bool:
    """Has this process been asked to stop?"""
    return _requested


def request(*_: object) -> None:
    global _requested
    _requested = True


def in_pool_child() -> None:
    """This process is a prefork child: tasks catch SIGTERM while they run (`during_task`)."""
    global _pool_child
    _pool_child = True


def during_task() -> None:
    if _pool_child:
        signal.signal(signal.SIGTERM, request)


def after_task() -> None:
    if _pool_child:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop_pool(consumer: Any) -> None:
    """The worker's warm shutdown: tasks in this process (solo, threads) and in the prefork
    children hand back what they have not started."""
    request()
    for pid in consumer.pool.info.get("processes", []):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
