"""Celery tasks of the syncs: thin wrappers around workers.syncing (queue `hookyard.sync`) and
workers.fetching (queue `hookyard.fetch`)."""

from __future__ import annotations

import os
import time
from functools import cache

import redis
from celery import Task

from connectors.tokens import TokenAuth
from events.db import utcnow
from events.queue import (
    FETCH_TASK,
    SYNC_FETCH_TASK,
    SYNC_SWEEP_TASK,
    SYNC_TASK,
    app,
    publish_fetches,
    publish_sync,
)
from events.refresh import auth_for
from events.secretbox import load_box
from events.settings import Settings, get_settings
from events.sources import Source, environment, load_sources
from workers import fetching, stopping, syncing
from workers.tasks import engine

DEFAULT_SLOT_S = 60.0  # a beat slot's length when the stream has no interval of its own


def budget_redis_url(settings: Settings) -> str | None:
    """Where vendor rate budgets and breakers live: HOOKYARD_REDIS_URL, else the broker if it is
    Redis. None (the embedded stack): no shared budget; the vendor's 429s are still obeyed."""
    if settings.redis_url is not None:
        return settings.redis_url.get_secret_value()
    broker = settings.broker_url.get_secret_value()
    return broker if broker.startswith(("redis://", "rediss://")) else None


def make_deps(settings: Settings) -> syncing.Deps:
    url = budget_redis_url(settings)
    client = None if url is None else redis.Redis.from_url(url)
    sources = load_sources(settings.config, settings.secrets_file)
    box = load_box(environment(settings.secrets_file))

    def auth(source: Source) -> TokenAuth | None:
        """An OAuth source's token comes from its connection, refreshed single-flight (events.refresh)."""
        if source.oauth is None or box is None:
            return None
        return auth_for(engine(), source, box, settings.oauth)

    return syncing.Deps(
        sources=sources,
        client_for=lambda source: syncing.client_for(
            source,
            client,
            auth=auth(source),
            breaker_failures=settings.sync.breaker_failures,
            breaker_open_s=settings.sync.breaker_open_s,
        ),
        lease_s=settings.sync.lease_s,
        slice_s=settings.sync.slice_s,
        breaker_open_s=settings.sync.breaker_open_s,
        stopping=stopping.requested,
    )


@cache
def _deps(pid: int) -> syncing.Deps:
    return make_deps(get_settings())


def beat_slot(interval_s: float, now: float) -> str:
    """The schedule slot a beat message belongs to: a second beat in the same slot is a duplicate."""
    return f"beat-{int(now // interval_s)}"


@app.task(name=SYNC_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def run_sync(
    self: Task,
    source: str,
    stream: str,
    slot: str | None = None,
    triggered_by: str = "beat",
    full: bool = False,
) -> str:
    """One run of one stream; a stream busy elsewhere or a slot that already ran does nothing."""
    deps = _deps(os.getpid())
    if slot is None:
        schedule = deps.sources[source].sync if source in deps.sources else None
        slot = beat_slot((schedule or {}).get(stream, DEFAULT_SLOT_S), time.time())
    result = syncing.run(engine(), deps, source, stream, slot=slot, triggered_by=triggered_by, full=full)
    return str(result.status)


@app.task(name=SYNC_FETCH_TASK, acks_late=True, reject_on_worker_lost=True)
def fetch(source: str, stream: str, object_id: str) -> int:
    """Read one object now (a rule's `sync.trigger` with an id) and store it as a sync would."""
    return syncing.fetch_one(engine(), _deps(os.getpid()), source, stream, object_id).applied


@app.task(name=FETCH_TASK, acks_late=True, reject_on_worker_lost=True)
def fetch_object(source: str, stream: str, object_id: str) -> str:
    """An event-driven fetch of one object, if its row is due (workers.fetching)."""
    return str(fetching.run(engine(), _deps(os.getpid()), source, stream, object_id))


@app.task(name=SYNC_SWEEP_TASK)
def sweep() -> int:
    """Send the runs due to go on (stopped early, or their worker died) and the fetches that are due."""
    settings = get_settings()

    sources = _deps(os.getpid()).sources

    def send(source: str, stream: str, slot: str) -> None:
        if source in sources:  # a source removed from the file keeps its cursor, and is not run
            publish_sync(source, stream, slot=slot, triggered_by="resume")

    now = utcnow()
    runs = syncing.sweep(engine(), now=now, requeue_s=settings.sync.requeue_s, send=send)
    due = fetching.sweep(engine(), now=now, requeue_s=settings.sync.requeue_s)
    publish_fetches(
        (source, stream, object_id, 0.0) for source, stream, object_id in due if source in sources
    )
    return runs + len(due)
