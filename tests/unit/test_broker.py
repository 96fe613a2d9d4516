"""The embedded broker (events.broker) through kombu, on a SQLite file of the test's own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection
from kombu.simple import SimpleQueue
from sqlalchemy import create_engine, text

import events.broker  # noqa: F401 - registers the sqlite:// broker scheme


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/broker.db"


@pytest.fixture
def queue(url: str) -> Iterator[SimpleQueue]:
    with Connection(url) as conn:
        q = conn.SimpleQueue("jobs")
        yield q
        q.close()


def rows(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM kombu_message")).scalar_one()
    engine.dispose()
    return int(n)


def test_messages_come_out_in_order_and_a_taken_one_leaves_the_file(url: str, queue: SimpleQueue) -> None:
    """First in, first out; taking a message deletes its row (kombu's transport keeps every one)."""
    for n in range(3):
        queue.put({"n": n})
    assert rows(url) == 3 and queue.qsize() == 3
    taken = [queue.get(timeout=5) for _ in range(3)]
    assert [m.payload["n"] for m in taken] == [0, 1, 2]
    assert rows(url) == 0
    for m in taken:
        m.ack()


def test_a_message_published_by_another_process_wakes_an_idle_consumer(url: str, queue: SimpleQueue) -> None:
    """Once the queue was found empty the consumer only watches the file; a commit from another
    connection (here another kombu connection) is noticed and delivered."""
    with pytest.raises(queue.Empty):
        queue.get(timeout=0.2)

    def publish() -> None:
        with Connection(url) as other:
            other.SimpleQueue("jobs").put({"late": True})

    publisher = threading.Timer(0.3, publish)
    publisher.start()
    message = queue.get(timeout=10)
    publisher.join()
    assert message.payload == {"late": True}
    message.ack()


def test_an_unacked_message_is_back_in_the_file_after_a_clean_close(url: str) -> None:
    """A consumer that stops cleanly before acking returns its message (kombu restores unacked)."""
    with Connection(url) as conn:
        q = conn.SimpleQueue("jobs")
        q.put({"n": 1})
        assert q.get(timeout=5).payload == {"n": 1}
        assert rows(url) == 0
        q.close()
    assert rows(url) == 1
    with Connection(url) as conn:
        q = conn.SimpleQueue("jobs")
        again = q.get(timeout=5)
        assert again.payload == {"n": 1}
        again.ack()
        q.close()


def test_a_file_kombus_own_transport_used_loses_its_consumed_messages_on_open(url: str) -> None:
    """A broker file kombu's own transport used keeps every consumed message (invisible); opening it
    drops those and keeps what still waits."""
    with Connection(url.replace("sqlite://", "sqla+sqlite://")) as stock:
        q = stock.SimpleQueue("jobs")
        q.put({"n": 1})
        q.put({"n": 2})
        q.get(timeout=5).ack()
        q.close()
    assert rows(url) == 2  # one consumed (kept, invisible), one waiting
    with Connection(url) as conn:
        q = conn.SimpleQueue("jobs")
        assert rows(url) == 1
        waiting = q.get(timeout=5)
        assert waiting.payload == {"n": 2}
        waiting.ack()
        q.close()
