"""COMPARISON ONLY: a bare Celery app whose task does nothing, on Hookyard's broker settings.

The worker benchmark runs it with the same broker, pool, concurrency, prefetch and acks_late as
Hookyard's worker, so "Hookyard events/s ÷ no-op tasks/s" is the cost of Hookyard's processing.
Environment: BENCH_NOOP_BROKER (a Redis URL; default: Hookyard's HOOKYARD_BROKER_URL).
"""

from __future__ import annotations

import os

from celery import Celery

from events.queue import celery_config
from events.settings import Settings

NOOP_TASK = "bench.noop"
NOOP_QUEUE = "bench.noop"

app = Celery("bench_noop")
_config = celery_config(Settings())
_config.pop("beat_schedule")
_config["broker_url"] = os.environ.get("BENCH_NOOP_BROKER", _config["broker_url"])
app.conf.update(_config, task_default_queue=NOOP_QUEUE)


@app.task(name=NOOP_TASK, acks_late=True, reject_on_worker_lost=True)
def noop(event_id: str) -> None:
    """Nothing: the floor of what a Celery task costs."""
