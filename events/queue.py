"""The queue: the Celery application, queue and task names, and `publish`.

Both sides of the broker use this module: the ingress and the relay publish event ids, the workers
consume them. It names tasks by string, so it never imports `workers`.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from celery import Celery, bootsteps
from celery.signals import setup_logging
from celery.worker.consumer import Consumer
from kombu.entity import Exchange, Queue

from connectors import registry
from connectors.internal import INTERNAL_SOURCE
from events import broker  # noqa: F401 - registers the embedded broker's URL scheme
from events.log import configure_logging
from events.settings import Settings, get_settings
from events.sources import Source

log = structlog.get_logger()

QUEUE_PREFIX = "hookyard."
MAINTENANCE_QUEUE = "hookyard.maintenance"

PROCESS_TASK = "hookyard.events.process"  # args: [event ids], all of one vendor, ids_per_message at most
ACTIONS_QUEUE = "hookyard.actions"
ACTION_TASK = "hookyard.actions.run"  # args: [action run ids], claimed together, run one by one
ACTION_BATCH_MAX = 10
RELAY_TASK = "hookyard.maintenance.relay"
RETENTION_TASK = "hookyard.maintenance.retention"
SYNC_QUEUE = "hookyard.sync"
SYNC_TASK = "hookyard.sync.run"  # args: [source, stream]; kwargs: slot, triggered_by, full
SYNC_SWEEP_TASK = "hookyard.sync.sweep"
SYNC_FETCH_TASK = "hookyard.sync.fetch"  # args: [source, stream, object id]: one object, real-time
FETCH_QUEUE = "hookyard.fetch"  # event-driven fetches: real-time, never behind a long sync run
FETCH_TASK = "hookyard.fetch.run"  # args: [source, stream, object id]: its object_fetches row, once due
MONITOR_TASK = "hookyard.maintenance.monitor"
PUBLISHED_AT = "published_at"  # message header: unix time of the publish (the workers' queue wait)
# RabbitMQ with quorum queues: one topic exchange routes to every queue (what Celery's native delayed
# delivery binds to); a message redelivered past the delivery limit goes to the dead-letter exchange
TASK_EXCHANGE = "hookyard.tasks"
DEAD_LETTER_EXCHANGE = "hookyard.dead-letters"
DEAD_LETTER_QUEUE = "hookyard.dead-letters"


def vendor_queue(vendor: str) -> str:
    return f"{QUEUE_PREFIX}{vendor}"


def queue_groups(vendors: Iterable[str]) -> dict[str, list[str]]:
    """Hookyard's queues in the groups a deployment gives workers of their own: `events` (one queue
    per vendor and the internal source's alert events), the rules' `actions`, `sync` (runs and
    event-driven fetches) and `maintenance` (relay, retention, monitor, sync sweeps)."""
    names = sorted({*vendors, INTERNAL_SOURCE})
    return {
        "events": [vendor_queue(v) for v in names],
        "actions": [ACTIONS_QUEUE],
        "maintenance": [MAINTENANCE_QUEUE],
        "sync": [SYNC_QUEUE, FETCH_QUEUE],  # fetches: their own queue, never behind queued runs
    }


def hookyard_queues(vendors: Iterable[str]) -> list[str]:
    """Every queue Hookyard's workers consume: every group's."""
    return [name for group in queue_groups(vendors).values() for name in group]


def quorum_queues(names: Iterable[str], settings: Settings) -> list[Queue]:
    """Durable quorum queues that dead-letter (at least once) a message redelivered past the limit."""
    arguments = {
        "x-queue-type": "quorum",
        "x-delivery-limit": settings.rabbitmq.delivery_limit,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",  # at-least-once dead-lettering requires it
    }
    exchange = Exchange(TASK_EXCHANGE, type="topic")
    return [Queue(name, exchange, routing_key=name, queue_arguments=arguments) for name in names]


def dead_letter_queue(settings: Settings) -> Queue:
    """Where RabbitMQ puts messages past the delivery limit (or rejected): ids for an operator to
    look at; the events themselves stay unfinished in the database and the relay sends them again."""
    arguments = {
        "x-queue-type": "quorum",
        "x-max-length": settings.rabbitmq.dead_letter_max,
        "x-overflow": "drop-head",
    }
    return Queue(DEAD_LETTER_QUEUE, Exchange(DEAD_LETTER_EXCHANGE, type="fanout"), queue_arguments=arguments)


def rabbitmq_config(settings: Settings) -> dict[str, Any]:
    """Publisher confirms and worker heartbeats on RabbitMQ; quorum queues unless switched off."""
    config: dict[str, Any] = {
        "broker_transport_options": {"confirm_publish": True},  # a publish returns once RabbitMQ has it
        "broker_heartbeat": settings.rabbitmq.heartbeat_s,
    }
    if settings.quorum_queues:
        config.update(
            # every queue a worker may consume or a publisher may name, declared alike: a queue
            # outside this list is a mistake (`--queues` refuses it), never a classic queue made up
            task_queues=quorum_queues(hookyard_queues(registry.names()), settings),
            task_create_missing_queues=False,
            # quorum queues refuse global QoS: Celery then sets a per-consumer prefetch
            # (worker_prefetch_multiplier × concurrency), which is what we ask for anyway
            worker_detect_quorum_queues=True,
            worker_consumer=f"{__name__}:QuorumConsumer",
        )
    return config


class DeclareDeadLetters(bootsteps.StartStopStep):
    """Each worker declares the dead-letter exchange and queue when it connects (before a message of
    its queues can be dead-lettered; RabbitMQ keeps retrying at-least-once dead letters until then)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def include_if(self, parent: Any) -> bool:
        return get_settings().quorum_queues

    def start(self, parent: Any) -> None:
        dead_letter_queue(get_settings())(parent.connection.default_channel).declare()


class QuorumConsumer(Consumer):
    """Celery's consumer without native delayed delivery, plus the dead letters. Hookyard sends no
    countdown or ETA task (retries wait in the database), so the 28 delay queues and the bindings
    Celery would make for every queue on quorum queues are never used."""

    class Blueprint(Consumer.Blueprint):
        default_steps = [
            *(s for s in Consumer.Blueprint.default_steps if not s.endswith(":DelayedDelivery")),
            f"{__name__}:DeclareDeadLetters",
        ]


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.broker_url.get_secret_value(),
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 3,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        # At-least-once delivery; exactly-once effects come from leases and fencing in the database.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": MAINTENANCE_QUEUE,
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,  # our structlog lines go to stderr as they are
        # workers send task events, so Flower and `celery events` see every task from the moment a
        # worker receives it (a dead letter as failed). No "task-sent" event per publish: it was a
        # second broker write for every message the ingress and the relay send (a third of the cost
        # of a publish), for a "sent" state a queued task shows anyway in its queue's length
        "worker_send_task_events": True,
        "task_send_sent_event": False,
        # sends only while it holds the beat lease (any number of beats may run; one leads)
        "beat_scheduler": "workers.beat:LeaderScheduler",
        "beat_schedule": {
            "relay": {
                "task": RELAY_TASK,
                "schedule": settings.relay.interval_s,
                "options": {"queue": MAINTENANCE_QUEUE, "expires": max(settings.relay.interval_s, 1.0)},
            },
            "monitor": {
                "task": MONITOR_TASK,
                "schedule": settings.monitor.interval_s,
                "options": {"queue": MAINTENANCE_QUEUE, "expires": max(settings.monitor.interval_s, 1.0)},
            },
            "retention": {
                "task": RETENTION_TASK,
                "schedule": settings.retention.interval_s,
                "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.retention.interval_s},
            },
        },
        **(rabbitmq_config(settings) if settings.on_rabbitmq else {}),
    }


app = Celery("hookyard", include=["workers.tasks", "workers.syncs"])
app.on_configure.connect(lambda sender, **_: sender.conf.update(celery_config(get_settings())), weak=False)


@setup_logging.connect
def _logging(**_: Any) -> None:
    """Celery leaves logging alone when this signal has a receiver: its records (worker, beat, task
    trace) reach the root logger, which renders them like every other line (`events.log`)."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)


def publish(items: Iterable[tuple[str, str]], per_message: int | None = None) -> int:
    """Send (event_id, vendor) pairs to their vendor queues, up to `per_message` (default
    `ids_per_message`) ids a message, over one connection; return how many ids were sent."""
    per_message = per_message or get_settings().ids_per_message
    by_vendor: dict[str, list[str]] = defaultdict(list)
    for event_id, vendor in items:
        by_vendor[vendor].append(event_id)
    with app.producer_or_acquire() as producer:
        for vendor, ids in by_vendor.items():
            for start in range(0, len(ids), per_message):
                app.send_task(
                    PROCESS_TASK,
                    args=[ids[start : start + per_message]],
                    queue=vendor_queue(vendor),
                    producer=producer,
                    headers={PUBLISHED_AT: time.time()},
                )
    return sum(len(ids) for ids in by_vendor.values())


def sync_schedule(sources: Mapping[str, Source], sweep_interval_s: float) -> dict[str, Any]:
    """Beat entries for every stream a source keeps fresh (each expires after its interval, so a
    backlog never replays stale schedules), and the sweeper that resumes runs that stopped early and
    sends the event-driven fetches that are due (when any source has either)."""
    entries: dict[str, Any] = {
        f"sync:{source.name}:{stream}": {
            "task": SYNC_TASK,
            "schedule": interval_s,
            "args": [source.name, stream],
            "kwargs": {"triggered_by": "beat"},
            "options": {"queue": SYNC_QUEUE, "expires": interval_s},
        }
        for source in sources.values()
        for stream, interval_s in (source.sync or {}).items()
    }
    if entries or any(source.fetch is not None for source in sources.values()):
        entries["sync-sweep"] = {
            "task": SYNC_SWEEP_TASK,
            "schedule": sweep_interval_s,
            "options": {"queue": MAINTENANCE_QUEUE, "expires": max(sweep_interval_s, 1.0)},
        }
    return entries


def publish_sync(source: str, stream: str, *, slot: str, triggered_by: str, full: bool = False) -> None:
    """Send one run of a stream to the sync queue (a slot names it: the same slot runs once)."""
    app.send_task(
        SYNC_TASK,
        args=[source, stream],
        kwargs={"slot": slot, "triggered_by": triggered_by, "full": full},
        queue=SYNC_QUEUE,
    )


def publish_fetches(due: Iterable[tuple[str, str, str, float]]) -> None:
    """Send (source, stream, object id, seconds until due) to the fetch queue, each to run when its
    coalescing window ends (a short countdown; the row in the database is what counts: a message
    early, late, twice or lost changes nothing, the sweeper sends what is due and unsent)."""
    with app.producer_or_acquire() as producer:
        for source, stream, object_id, countdown_s in due:
            app.send_task(
                FETCH_TASK,
                args=[source, stream, object_id],
                queue=FETCH_QUEUE,
                countdown=max(countdown_s, 0.0) or None,
                producer=producer,
            )


def publish_actions(run_ids: Iterable[str]) -> int:
    """Send action run ids to the actions queue, up to ACTION_BATCH_MAX a message; how many were sent."""
    ids = list(run_ids)
    if not ids:
        return 0
    with app.producer_or_acquire() as producer:
        for start in range(0, len(ids), ACTION_BATCH_MAX):
            app.send_task(
                ACTION_TASK,
                args=[ids[start : start + ACTION_BATCH_MAX]],
                queue=ACTIONS_QUEUE,
                producer=producer,
                headers={PUBLISHED_AT: time.time()},
            )
    return len(ids)


def trigger_sync(source: str, stream: str, object_id: str | None, trigger: str) -> None:
    """A rule's `sync.trigger`: fetch one object of a stream now, or run the stream now. `trigger` is
    the idempotency key of the action that asked: its run's slot, so a retried action runs once."""
    if object_id is not None:
        app.send_task(SYNC_FETCH_TASK, args=[source, stream, object_id], queue=SYNC_QUEUE)
    else:
        publish_sync(source, stream, slot=f"rule:{trigger}"[:100], triggered_by="rule")


def connect_publisher() -> None:
    """Open the publishing connection ahead of the first event (a cold first publish costs the first
    events their latency); if the broker is down, carry on: the relay covers what is not published."""
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=1)


def probe_broker(timeout_s: float) -> None:
    """Open and close a broker connection (raises when the broker cannot be reached): readiness."""
    with app.connection_for_write(connect_timeout=timeout_s) as conn:
        conn.ensure_connection(max_retries=0, timeout=timeout_s)


def queue_depths(names: Iterable[str], timeout_s: float) -> dict[str, int | None]:
    """Messages waiting in each queue (a message carries up to `ids_per_message` event ids); a queue
    the broker does not know counts 0. Raises when the broker cannot be reached."""
    depths: dict[str, int | None] = {}
    with app.connection_for_read(connect_timeout=timeout_s) as conn:
        conn.ensure_connection(max_retries=0, timeout=timeout_s)
        for name in names:
            channel = conn.channel()  # a fresh channel: AMQP closes one on a passive miss
            try:
                depths[name] = channel.queue_declare(queue=name, passive=True).message_count
            except conn.channel_errors:
                depths[name] = 0
            finally:
                with contextlib.suppress(Exception):
                    channel.close()
    return depths
