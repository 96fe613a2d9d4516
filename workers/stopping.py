"""A worker asked to stop: each task finishes the item at hand and hands the rest back.

Celery's warm shutdown (SIGTERM to the worker) takes no more messages and waits for the tasks that
run. What a task holds is then given back rather than left to expire: the claimed rows it has not
begun get their lease released, their attempt uncounted, and are published again at once
(`workers.leases.hand_back_statement`). The request reaches the tasks two ways:

- the worker's SIGTERM handler sets a flag in memory shared with its prefork children (made here,
  before the pool forks), so a Kubernetes pod, whose PID 1 alone gets the signal, stops them too;
- a child that gets SIGTERM itself (systemd and `kill -- -PGID` signal the whole group) notes it
  while a task runs instead of dying mid-task; between tasks it still stops at once, as before.
"""

from __future__ import annotations

import ctypes
import signal
from multiprocessing.sharedctypes import RawValue
from typing import Any

_shared = RawValue(ctypes.c_bool, False)  # noqa: FBT003 - one byte, written once, read by every child
_pool_child = False


def requested() -> bool:
    """Has this worker been asked to stop?"""
    return bool(_shared.value)


def request(*_: object) -> None:
    _shared.value = True


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


def stop_pool(_consumer: Any) -> None:
    """The worker's warm shutdown (called in its SIGTERM handler): every task, in this process or a
    child, hands back what it has not begun."""
    request()
