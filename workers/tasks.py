"""Celery tasks: thin wrappers that take ids, open the database and call the real logic."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from functools import cache
from typing import Any

import httpx
import structlog
from celery import Task
from celery.apps.worker import install_worker_term_handler
from celery.signals import (
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from sqlalchemy import Engine

from connectors import registry
from connectors.http import make_http_client
from events import metrics
from events.counts import Flusher
from events.db import make_engine, utcnow
from events.log import configure_logging
from events.multiprocess import mark_dead
from events.queue import (
    ACTION_TASK,
    MONITOR_TASK,
    PROCESS_TASK,
    PUBLISHED_AT,
    QUEUE_PREFIX,
    RELAY_TASK,
    RETENTION_TASK,
    app,
    publish,
)
from events.runtime_flags import FlagCache
from events.settings import get_settings
from events.sources import load_sources
from rules.loader import RulesWatcher, watch_configured
from rules.ruleset import RuleSet
from workers import actions, monitor, processing, stopping
from workers.automation import Automation
from workers.relay import relay as run_relay
from workers.retention import prune

log = structlog.get_logger()


@cache
def _engine(pid: int) -> Engine:
    return make_engine(get_settings().database_url.get_secret_value())


def engine() -> Engine:
    """One engine per process; a forked child never reuses its parent's connections."""
    return _engine(os.getpid())


@cache
def _rules(pid: int) -> RulesWatcher | None:
    """This process's rules, reloaded when their files change (None: the sources file names none)."""
    settings = get_settings()
    sources = load_sources(settings.config, settings.secrets_file)
    return watch_configured(settings.config, settings.secrets_file, sources.keys())


def _current_rules() -> RuleSet:
    watcher = _rules(os.getpid())
    return RuleSet(()) if watcher is None else watcher.current()


@cache
def _context(pid: int) -> processing.Context:
    settings = get_settings()
    automation = None
    if _rules(pid) is not None:
        automation = Automation(
            _current_rules, FlagCache(settings.rules.flags_cache_s), relay_grace_s=settings.relay.grace_s
        )
    return processing.Context(
        sources=load_sources(settings.config, settings.secrets_file),
        lease_s=settings.worker.lease_s,
        http=httpx.Client(timeout=10.0),
        fault_delay_s=settings.worker.fault_delay_s,
        automation=automation,
        stopping=stopping.requested,
    )


@cache
def _actions_context(pid: int) -> actions.ActionContext:
    settings = get_settings()
    return actions.ActionContext(
        rules=_current_rules,
        lease_s=settings.worker.lease_s,
        http=make_http_client(),
        fault_delay_before_s=settings.worker.fault_delay_before_action_s,
        fault_delay_after_s=settings.worker.fault_delay_after_action_s,
        stopping=stopping.requested,
    )


_FLUSHERS: dict[int, Flusher] = {}


def _start_flusher() -> None:
    """This process's counts (vendor API calls) go to the database every few seconds."""
    if os.getpid() not in _FLUSHERS:
        _FLUSHERS[os.getpid()] = Flusher(engine(), get_settings().monitor.counts_flush_s).start()


def _stop_flusher(pid: int) -> None:
    flusher = _FLUSHERS.pop(pid, None)
    if flusher is not None:
        flusher.stop()  # one last flush


@worker_process_init.connect
def _init_process(**_: object) -> None:
    """Warm each pool process before its first task: logging, sources, connectors, a connection,
    and the thread that writes its counts (vendor API calls) to the database."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    stopping.in_pool_child()
    for source in _context(os.getpid()).sources.values():
        registry.get(source.connector)
    _actions_context(os.getpid())
    with engine().connect():
        pass
    _start_flusher()


@task_prerun.connect
def _bind_task(task_id: str, task: Task, **_: object) -> None:
    """Every line a task writes (ours and Celery's) carries its id and name, and nothing of the task
    before it in this process."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_id=task_id, task=task.name)
    stopping.during_task()  # SIGTERM now means: finish the item at hand, hand the rest back


@task_postrun.connect
def _task_over(**_: object) -> None:
    stopping.after_task()


@worker_process_shutdown.connect
def _process_exit(pid: int, **_: object) -> None:
    _stop_flusher(pid)
    mark_dead(pid)


@worker_ready.connect
def _quiet_term_handler(sender: Any, **_: object) -> None:
    """Celery writes `worker: Warm shutdown (MainProcess)` to stdout as plain text on SIGTERM; keep
    the warm shutdown and say it in a structured line instead (`worker.stopping`), and have the
    tasks running hand back what they have not begun (`workers.stopping`). A pool without child
    processes (solo, threads) runs its tasks in this process: it gets a flusher too."""
    install_worker_term_handler(sender, callback=stopping.stop_pool, verbose=False)
    _start_flusher()


@worker_shutdown.connect
def _stopping(**_: object) -> None:
    log.info("worker.stopping")
    _stop_flusher(os.getpid())


class DeadLettered(Exception):
    """Raised by the process task once the dead letters of its message are committed, so the task
    ends in the FAILURE state (Flower, `celery events`). Not retried; with acks_late the message is
    still acknowledged (a failed task is acked like a finished one), so nothing is redelivered."""


@app.task(name=PROCESS_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, throws=(DeadLettered,))
def process_events(self: Task, event_ids: list[str]) -> list[str]:
    """Claimed and finished together, each on its own lease: a worker dying half-way leaves its
    events to the relay, and done ones stay done. A message with a dead-lettered event fails."""
    started = time.time()
    outcomes = processing.process_many(engine(), event_ids, _context(os.getpid()))
    _observe_queue_wait(self.request, started, outcomes.values())
    dead = [event_id for event_id in event_ids if outcomes[event_id] is processing.Outcome.DEAD]
    if dead:
        raise DeadLettered(f"dead-lettered: {', '.join(dead)} (see `hookyard dlq show ID`)")
    return [str(outcomes[event_id]) for event_id in event_ids]


def _observe_queue_wait(request: Any, claimed_at: float, outcomes: Iterable[processing.Outcome]) -> None:
    """Once per event this message got claimed: claim time minus the message's publish time
    (a message without the header, from an older publisher, is not measured)."""
    published = getattr(request, PUBLISHED_AT, None)
    if not isinstance(published, int | float):
        return
    routing_key = str((request.delivery_info or {}).get("routing_key") or "")
    histogram = metrics.QUEUE_WAIT.labels(routing_key.removeprefix(QUEUE_PREFIX) or "unknown")
    for outcome in outcomes:
        if outcome is not processing.Outcome.SKIPPED:
            histogram.observe(max(claimed_at - published, 0.0))


@app.task(name=ACTION_TASK, acks_late=True, reject_on_worker_lost=True)
def run_actions(run_ids: list[str]) -> list[str]:
    """The runs claimed together, then run in turn: done ones stay done, a lost message is relayed."""
    outcomes = actions.run_many(engine(), run_ids, _actions_context(os.getpid()))
    return [str(outcomes[run_id]) for run_id in run_ids]


@app.task(name=RELAY_TASK)
def relay() -> int:
    settings = get_settings()
    return run_relay(engine(), now=utcnow(), grace_s=settings.relay.grace_s, limit=settings.relay.batch)


@app.task(name=MONITOR_TASK)
def monitor_sources() -> int:
    """Judge every source's health, SLAs and anomalies; publish the alert events it raises."""
    settings = get_settings()
    raised = monitor.run(
        engine(),
        _context(os.getpid()).sources,
        utcnow(),
        interval_s=settings.monitor.interval_s,
        window_s=settings.monitor.window_s,
        relay_grace_s=settings.relay.grace_s,
    )
    if raised:
        publish(raised)  # if the broker is down, the relay publishes them: they are stored
    return len(raised)


@app.task(name=RETENTION_TASK)
def retention() -> dict[str, int]:
    keep = get_settings().retention
    return prune(
        engine(), now=utcnow(), processed_days=keep.processed_days, dead_letter_days=keep.dead_letter_days
    )
