"""RabbitMQ done properly, on real processes: quorum queues whose poison messages reach the
dead-letter exchange after the delivery limit instead of looping; a dead-lettered message's events
are relayed and processed; connections cut under load lose and repeat nothing."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kombu
import orjson
import pytest

from events.queue import DEAD_LETTER_QUEUE, MAINTENANCE_QUEUE, vendor_queue
from tests.integration.harness import Stack, wait_for
from tests.integration.tcpproxy import TcpProxy

pytestmark = pytest.mark.integration

DELIVERY_LIMIT = 2
# `hookyard` knowing one more task, which kills its pool process
POISON_WORKER = (sys.executable, str(Path(__file__).with_name("poison_worker.py")))


def depth(stack: Stack, queue: str) -> int:
    """Messages ready in a queue (a queue not declared yet counts 0)."""
    with kombu.Connection(stack.broker_url) as conn:
        try:
            return int(conn.channel().queue_declare(queue=queue, passive=True).message_count)
        except conn.channel_errors:
            return 0


def queue_type(stack: Stack, queue: str) -> str:
    vhost = stack.broker_url.rsplit("/", 1)[1]
    out = subprocess.run(
        ["rabbitmqctl", "list_queues", "-p", vhost, "--quiet", "--no-table-headers", "name", "type"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return dict(line.split("\t") for line in out.splitlines())[queue]


def post_many(stack: Stack, n: int) -> list[str]:
    """Post n distinct signed deliveries, 8 at a time; the ids of those answered 2xx."""

    def one(_: int) -> list[str]:
        try:
            resp = stack.post("shop", stack.sample("shop", "shopify"))
        except Exception:
            return []
        return list(resp.json()["ids"]) if resp.status_code == 200 else []

    with ThreadPoolExecutor(8) as pool:
        return [i for ids in pool.map(one, range(n)) for i in ids]


def test_a_poison_message_is_dead_lettered_after_the_delivery_limit(rabbit_stack: Stack) -> None:
    """A message that kills its worker process every time is delivered 1 + limit times, then lies in
    the dead-letter queue (reason delivery_limit); the worker goes on processing its neighbours."""
    rabbit_stack.env_extra["HOOKYARD_RABBITMQ__DELIVERY_LIMIT"] = str(DELIVERY_LIMIT)
    rabbit_stack.start_web()
    worker = rabbit_stack.start_worker(beat=False, program=POISON_WORKER)
    env = rabbit_stack.env()
    subprocess.run([*POISON_WORKER, "poison"], cwd=rabbit_stack.root, env=env, check=True, timeout=60)
    wait_for(lambda: depth(rabbit_stack, DEAD_LETTER_QUEUE) == 1, timeout=60, what="one dead letter")

    with kombu.Connection(rabbit_stack.broker_url) as conn:
        message = conn.default_channel.basic_get(queue=DEAD_LETTER_QUEUE, no_ack=True)
    [death] = message.headers["x-death"]
    assert (death["queue"], death["reason"]) == (MAINTENANCE_QUEUE, "delivery_limit")
    assert message.headers["task"] == "hookyard.test.crash"
    assert worker.log.read_text().count("exited with 'signal 9 (SIGKILL)'") == 1 + DELIVERY_LIMIT
    assert depth(rabbit_stack, MAINTENANCE_QUEUE) == 0
    assert {queue_type(rabbit_stack, q) for q in (MAINTENANCE_QUEUE, DEAD_LETTER_QUEUE)} == {"quorum"}

    ids = post_many(rabbit_stack, 5)
    assert len(ids) == 5
    rabbit_stack.wait_all_done(5)


def test_the_events_of_a_dead_lettered_message_are_relayed_and_processed(rabbit_stack: Stack) -> None:
    """Messages rejected into the dead-letter exchange carry only ids: their events stay unfinished
    in the database, the relay publishes them again and they are processed, each once."""
    rabbit_stack.start_web()
    declaring = rabbit_stack.start_worker("--group", "maintenance", beat=False)  # the dead letters
    ids = post_many(rabbit_stack, 12)
    assert len(ids) == 12
    rejected: list[str] = []
    messages = 0
    with kombu.Connection(rabbit_stack.broker_url) as conn:
        ch = conn.default_channel

        def reject_one() -> bool:
            nonlocal messages
            message = ch.basic_get(queue=vendor_queue("shopify"))
            if message is not None:
                messages += 1
                rejected.extend(orjson.loads(message.body)[0][0])
                ch.basic_reject(message.delivery_tag, requeue=False)
            return len(rejected) == 12

        wait_for(reject_one, timeout=30, what="every message rejected")
    assert sorted(rejected) == sorted(ids)
    wait_for(lambda: depth(rabbit_stack, DEAD_LETTER_QUEUE) == messages, timeout=30, what="dead letters")
    assert depth(rabbit_stack, vendor_queue("shopify")) == 0
    assert rabbit_stack.states() == {"accepted": 12}

    declaring.stop()  # one node name per vhost: celery@host
    rabbit_stack.start_worker()  # every queue, and beat: the relay
    rabbit_stack.wait_all_done(12)
    assert sorted(rabbit_stack.record_versions())[:12] == [1] * 12
    assert depth(rabbit_stack, DEAD_LETTER_QUEUE) == messages  # kept for the operator, not re-driven
    assert rabbit_stack.cli("status")["queues"]["messages"][DEAD_LETTER_QUEUE] == messages


def test_broker_connections_cut_under_load_lose_and_repeat_nothing(rabbit_stack: Stack) -> None:
    """Every connection to RabbitMQ (ingress, worker, beat) dropped twice while deliveries arrive:
    every 2xx is processed, exactly once."""
    host, port = "127.0.0.1", int(kombu.Connection(rabbit_stack.broker_url).port or 5672)
    proxy = TcpProxy((host, port))
    proxy.start()
    vhost = rabbit_stack.broker_url.rsplit("/", 1)[1]
    rabbit_stack.broker_url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/{vhost}"
    try:
        rabbit_stack.start_web()
        rabbit_stack.start_worker()
        accepted = post_many(rabbit_stack, 60)
        for _ in range(2):
            proxy.stop()
            accepted += post_many(rabbit_stack, 60)
            proxy.start()
            accepted += post_many(rabbit_stack, 60)
        assert len(accepted) == 300
        rabbit_stack.wait_all_done(300, timeout=120)
        assert rabbit_stack.states() == {"done": 300}
        assert sorted(rabbit_stack.record_versions())[:300] == [1] * 300
    finally:
        rabbit_stack.close()
        proxy.stop()
