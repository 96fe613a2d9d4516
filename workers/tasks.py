"""Celery tasks: thin wrappers that take ids, open the database and call the real logic."""

from __future__ import annotations

import os
from functools import cache

import httpx
import structlog
from celery import Task
from celery.signals import worker_process_init
from sqlalchemy import Engine

from connectors import registry
from events.db import make_engine, utcnow
from events.log import configure_logging
from events.queue import PROCESS_TASK, RELAY_TASK, RETENTION_TASK, app
from events.settings import get_settings
from events.sources import load_sources
from workers import processing
from workers.relay import relay as run_relay
from workers.retention import prune


@cache
def _engine(pid: int) -> Engine:
    return make_engine(get_settings().database_url.get_secret_value())


def engine() -> Engine:
    """One engine per process; a forked child never reuses its parent's connections."""
    return _engine(os.getpid())


@cache
def _context(pid: int) -> processing.Context:
    settings = get_settings()
    return processing.Context(
        sources=load_sources(settings.config, settings.secrets_file),
        lease_s=settings.worker.lease_s,
        http=httpx.Client(timeout=10.0),
        fault_delay_s=settings.worker.fault_delay_s,
    )


@worker_process_init.connect
def _init_process(**_: object) -> None:
    """Warm each pool process before its first task: logging, sources, connectors, a connection."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    for source in _context(os.getpid()).sources.values():
        registry.get(source.connector)
    with engine().connect():
        pass


@app.task(name=PROCESS_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def process_events(self: Task, event_ids: list[str]) -> list[str]:
    """Claimed and finished together, each on its own lease: a worker dying half-way leaves its
    events to the relay, and done ones stay done."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_id=self.request.id)
    outcomes = processing.process_many(engine(), event_ids, _context(os.getpid()))
    return [str(outcomes[event_id]) for event_id in event_ids]


@app.task(name=RELAY_TASK)
def relay() -> int:
    settings = get_settings()
    return run_relay(engine(), now=utcnow(), grace_s=settings.relay.grace_s, limit=settings.relay.batch)


@app.task(name=RETENTION_TASK)
def retention() -> dict[str, int]:
    keep = get_settings().retention
    return prune(
        engine(), now=utcnow(), processed_days=keep.processed_days, dead_letter_days=keep.dead_letter_days
    )
