"""The embedded broker: kombu's SQLAlchemy transport on one SQLite file, fit for `hookyard dev`.

A broker URL `sqlite:///path/broker.db` selects it (kombu transport alias `sqlite`, registered on
import). It keeps kombu's tables and its virtual channel (the same Celery code path: acks_late,
prefetch, reject_on_worker_lost); what differs from kombu's `sqla+sqlite://`, each measured
(BENCHMARKS.md, "The embedded default"):

- WAL and synchronous=NORMAL, as for the database: kombu commits each message with a rollback
  journal and a full sync (three fsyncs), 35-48 messages/s on this machine.
- Taking a message deletes it, in one statement: kombu marks it invisible and keeps it for ever,
  so every poll scans every message ever consumed (a file kombu's transport used loses those when
  opened here). An index on (queue, visible, id), and a read
  before the write, so that polling an empty queue takes no write lock.
- Polling every 5 ms, but the queues are only read when the file changed since they were all
  found empty (`PRAGMA data_version`, which any commit from another connection moves) or when a
  full prefetch window kept them from being read: an idle worker costs what kombu's costs.
  kombu sleeps a fixed second whenever the prefetch window is full or the queues are empty (and
  passes a `polling_interval` transport option on to `create_engine`, which refuses it).

Taking deletes the row, as kombu's invisible flag does in effect: the message then lives in the
worker's memory until acked (restored on a clean shutdown). A worker killed in between loses it,
and the relay republishes its events.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime
from json import dumps, loads
from queue import Empty
from time import monotonic, sleep
from typing import Any, cast

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqla
from kombu.transport.sqlalchemy import models as kombu_models
from sqlalchemy import Engine, delete, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from events.db import make_engine

SCHEME = "sqlite"
POLL_S = 0.005  # between looks at the broker file: a cheap PRAGMA while nothing changed
BY_QUEUE = "CREATE INDEX IF NOT EXISTS ix_hookyard_message_queue ON {table} (queue_id, visible, id)"


class Channel(kombu_sqla.Channel):
    _engines: dict[tuple[int, str], tuple[Engine, Any]] = {}  # one per process and file

    def __init__(self, connection: Any, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)
        self._queue_ids: dict[str, int] = {}

    def _open(self) -> tuple[Engine, Any]:
        """The engine of this process (a forked child never shares its parent's SQLite handles)."""
        key = (os.getpid(), self.connection.client.hostname)
        if key not in self._engines:
            with kombu_sqla._MUTEX:
                if key not in self._engines:
                    engine = make_engine(key[1])
                    kombu_models.metadata.create_all(engine)
                    with engine.begin() as conn:
                        conn.execute(text(BY_QUEUE.format(table=self.message_tablename)))
                        # what kombu's own transport consumed and kept, in a file it used before
                        conn.execute(text(f"DELETE FROM {self.message_tablename} WHERE NOT visible"))
                    self._engines[key] = engine, sessionmaker(bind=engine)
        return self._engines[key]

    @property
    def _engine(self) -> Engine:
        return self._open()[0]

    def _queue_id(self, queue: str) -> int:
        if queue not in self._queue_ids:
            self._queue_ids[queue] = self._get_or_create(queue).id
        return self._queue_ids[queue]

    def _pending(self, queue: str) -> Any:
        table = self.message_cls.__table__
        return (table.c.queue_id == self._queue_id(queue)) & table.c.visible.is_(True)

    # kombu names the second parameter `message` in its base class and `payload` here
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        table = self.message_cls.__table__
        with self._engine.begin() as conn:
            conn.execute(
                insert(table).values(
                    queue_id=self._queue_id(queue),
                    payload=dumps(payload),
                    visible=True,
                    timestamp=datetime.now(),
                    version=1,
                )
            )

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        table = self.message_cls.__table__
        pending = self._pending(queue)
        with self._engine.connect() as conn:  # a read first: an empty queue takes no write lock
            if conn.execute(select(table.c.id).where(pending).limit(1)).first() is None:
                raise Empty()
        oldest = select(table.c.id).where(pending).order_by(table.c.id).limit(1).scalar_subquery()
        with self._engine.begin() as conn:  # one statement: two consumers never take the same one
            row = conn.execute(delete(table).where(table.c.id == oldest).returning(table.c.payload)).first()
        if row is None:  # another consumer took it in between
            raise Empty()
        return loads(row.payload)

    def _size(self, queue: str) -> int:
        table = self.message_cls.__table__
        with self._engine.connect() as conn:
            count = select(func.count()).select_from(table).where(self._pending(queue))
            return int(conn.execute(count).scalar_one())

    def _purge(self, queue: str) -> int:
        table = self.message_cls.__table__
        with self._engine.begin() as conn:
            return int(conn.execute(delete(table).where(table.c.queue_id == self._queue_id(queue))).rowcount)


class Transport(kombu_sqla.Transport):
    Channel = Channel
    polling_interval = POLL_S

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self._path = make_url(client.hostname).database or ""
        self._watch: tuple[int, sqlite3.Connection] | None = None
        self._seen: int | None = None  # the file's data_version when every queue was last found empty

    def _data_version(self) -> int:
        """Changes whenever another connection, in any process, commits to the broker file."""
        if self._watch is None or self._watch[0] != os.getpid():
            watch = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            self._watch = os.getpid(), watch
        return int(self._watch[1].execute("PRAGMA data_version").fetchone()[0])

    def drain_events(self, connection: Any, timeout: float | None = None, **kwargs: Any) -> None:
        """Deliver one message. Every POLL_S: look at the queues if the file changed since they were
        all found empty (or a full prefetch window kept them from being looked at)."""
        started = monotonic()
        while True:
            version = self._data_version()
            if version != self._seen:
                ready = all(channel.qos.can_consume() for channel in self.channels)
                try:
                    cast(Any, self.cycle).get(self._deliver, timeout=timeout)
                    return
                except Empty:
                    if ready:
                        self._seen = version
            if timeout is not None and monotonic() - started >= timeout:
                raise TimeoutError()
            sleep(self.polling_interval)


TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")
