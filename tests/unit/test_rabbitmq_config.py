"""RabbitMQ's Celery configuration: quorum queues with a dead-letter exchange and a delivery limit,
publisher confirms and heartbeats; none of it on Redis or the embedded broker."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from events.queue import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    MAINTENANCE_QUEUE,
    QuorumConsumer,
    celery_config,
    dead_letter_queue,
    vendor_queue,
)
from events.settings import RabbitMQSettings, Settings

RABBIT = "amqp://guest:guest@127.0.0.1:5672/hookyard"


def config(broker: str, **rabbitmq: Any) -> dict[str, Any]:
    return celery_config(Settings(broker_url=SecretStr(broker), rabbitmq=RabbitMQSettings(**rabbitmq)))


def test_rabbitmq_gets_quorum_queues_that_dead_letter_past_the_delivery_limit() -> None:
    """Every Hookyard queue is a quorum queue on one topic exchange, with the limit and the DLX."""
    conf = config(RABBIT, delivery_limit=7)
    queues = {q.name: q for q in conf["task_queues"]}
    assert {vendor_queue("shopify"), vendor_queue("hookyard"), MAINTENANCE_QUEUE} <= set(queues)
    assert {q.exchange.name for q in queues.values()} == {"hookyard.tasks"}
    assert {q.exchange.type for q in queues.values()} == {"topic"}
    assert all(q.routing_key == name for name, q in queues.items())
    assert queues[MAINTENANCE_QUEUE].queue_arguments == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 7,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert conf["task_create_missing_queues"] is False
    assert conf["broker_transport_options"] == {"confirm_publish": True}
    assert conf["broker_heartbeat"] == 60
    assert conf["worker_consumer"] == "events.queue:QuorumConsumer"


def test_classic_queues_on_request_keep_confirms_and_heartbeats() -> None:
    """quorum_queues = false: Celery's own queues, still confirmed publishes and heartbeats."""
    conf = config("amqps://rabbit.internal/hookyard", quorum_queues=False, heartbeat_s=0)
    assert "task_queues" not in conf and "worker_consumer" not in conf
    assert conf["broker_transport_options"] == {"confirm_publish": True}
    assert conf["broker_heartbeat"] == 0


@pytest.mark.parametrize("broker", ["redis://127.0.0.1:6379/0", "sqlite:///.hookyard/broker.db"])
def test_other_brokers_get_none_of_it(broker: str) -> None:
    conf = config(broker)
    assert not {"task_queues", "broker_transport_options", "broker_heartbeat", "worker_consumer"} & set(conf)


def test_the_dead_letter_queue_is_bounded_and_bound_to_the_exchange() -> None:
    queue = dead_letter_queue(
        Settings(broker_url=SecretStr(RABBIT), rabbitmq=RabbitMQSettings(dead_letter_max=5))
    )
    assert (queue.name, queue.exchange.name, queue.exchange.type) == (
        DEAD_LETTER_QUEUE,
        DEAD_LETTER_EXCHANGE,
        "fanout",
    )
    assert queue.queue_arguments == {"x-queue-type": "quorum", "x-max-length": 5, "x-overflow": "drop-head"}


def test_the_worker_declares_dead_letters_and_makes_no_delay_queues() -> None:
    """Hookyard sends no countdown/ETA tasks: Celery's native delayed delivery step is left out."""
    steps = QuorumConsumer.Blueprint.default_steps
    assert "events.queue:DeclareDeadLetters" in steps
    assert not [s for s in steps if "delayed_delivery" in s]
    assert "celery.worker.consumer.tasks:Tasks" in steps
