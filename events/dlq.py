"""Dead letters: find, inspect, edit, replay and purge — shared by the CLI and the HTTP API.

A replay moves the event from `dead` back to `accepted` with a fresh attempt budget and publishes its
id; it keeps its id and dedupe key, so replaying something that already succeeded does nothing.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import Connection, Engine, Select, and_, delete, func, or_, select, update

from connectors import registry
from events import audit
from events.db import (
    EventState,
    LetterState,
    attempts,
    dead_letters,
    event_dict,
    events,
    row_dict,
    utcnow,
)
from schemas.envelope import Envelope
from schemas.errors import HookyardError, MalformedError

NO_NUL = r"^[^\x00]*$"
DURATION = r"^[0-9]+(\.[0-9]+)?[smhdw]$"  # `dlq purge --older-than`, the API's older_than
_DURATION = re.compile(DURATION, re.ASCII)
MAX_AGE = timedelta(days=365 * 100)
Text = Annotated[str, StringConstraints(pattern=NO_NUL)]
"""A string any text column can hold: PostgreSQL's text cannot hold a NUL character."""


class Filters(BaseModel):
    """Which dead letters: the same filters for the CLI, the API and retention."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Text | None = None
    vendor: Text | None = None
    task: Text | None = None
    error_class: Text | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: Text | None = None
    state: LetterState | None = LetterState.DEAD  # None: both

    def where(self) -> Any:
        dl = dead_letters.c
        clauses = [
            column == value
            for column, value in (
                (dl.source, self.source),
                (dl.vendor, self.vendor),
                (dl.task, self.task),
                (dl.error_class, self.error_class),
                (dl.state, self.state),
            )
            if value is not None
        ]
        if self.since is not None:
            clauses.append(dl.died_at >= self.since)
        if self.until is not None:
            clauses.append(dl.died_at < self.until)
        if self.text:
            pattern = f"%{self.text.lower()}%"
            clauses.append(
                or_(
                    func.lower(dl.error_message).like(pattern),
                    func.lower(dl.type).like(pattern),
                    func.lower(dl.traceback).like(pattern),
                    dl.event_id == self.text,
                )
            )
        return and_(*clauses) if clauses else and_(True)


class EditRejected(HookyardError):
    """The edited payload does not validate; it is not saved."""


class NoDeadLetter(EditRejected):
    """No dead letter has that event id."""


class NotDead(EditRejected):
    """The dead letter was replayed already: only one still dead can be edited."""


def _select(filters: Filters) -> Select[Any]:
    return (
        select(dead_letters)
        .where(filters.where())
        .order_by(dead_letters.c.died_at.desc(), dead_letters.c.event_id)
    )


def find(conn: Connection, filters: Filters, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    rows = conn.execute(_select(filters).limit(limit).offset(offset))
    return [row_dict(r, exclude=("traceback",)) for r in rows]


def count(conn: Connection, filters: Filters) -> int:
    return conn.execute(select(func.count()).select_from(dead_letters).where(filters.where())).scalar_one()


def show(conn: Connection, event_id: str) -> dict[str, Any] | None:
    letter = conn.execute(select(dead_letters).where(dead_letters.c.event_id == event_id)).first()
    if letter is None:
        return None
    event = conn.execute(select(events).where(events.c.id == event_id)).one()
    tried = conn.execute(select(attempts).where(attempts.c.event_id == event_id).order_by(attempts.c.id))
    return {**row_dict(letter), "event": event_dict(event), "attempt_log": [row_dict(a) for a in tried]}


def plan(conn: Connection, filters: Filters | None = None, ids: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(event id, vendor) of the dead letters a replay would take, oldest first."""
    stmt = select(dead_letters.c.event_id, dead_letters.c.vendor).where(
        dead_letters.c.state == LetterState.DEAD
    )
    if ids:
        stmt = stmt.where(dead_letters.c.event_id.in_(list(ids)))
    if filters is not None:
        stmt = stmt.where(filters.where())
    return [(r.event_id, r.vendor) for r in conn.execute(stmt.order_by(dead_letters.c.died_at))]


def replay_one(conn: Connection, event_id: str, now: datetime) -> bool:
    """Move one dead event back to accepted; False when it is not dead (nothing to do)."""
    moved = conn.execute(
        update(events)
        .where(events.c.id == event_id, events.c.state == EventState.DEAD)
        .values(
            state=EventState.ACCEPTED,
            attempts_before_replay=events.c.attempts,  # numbers go on; the budget starts afresh
            available_at=now,
            relay_at=now + timedelta(seconds=30),
            lease_token=None,
        )
    ).rowcount
    if moved:
        conn.execute(
            update(dead_letters)
            .where(dead_letters.c.event_id == event_id)
            .values(state=LetterState.REPLAYED, replays=dead_letters.c.replays + 1, replayed_at=now)
        )
    return bool(moved)


def set_path(document: Any, path: str, value: Any) -> Any:
    """Set `a.b.0.c` (dots; list indexes as numbers) in a copy of document."""
    result = copy.deepcopy(document)
    parts = path.split(".")
    node = result
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdecimal() or int(part) >= len(node):
                raise EditRejected(f"{path}: {part!r} is not an index of a list of {len(node)}")
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
        else:
            raise EditRejected(f"{path}: cannot descend into {type(node).__name__} at {part!r}")
        if last:
            node[key] = value
        else:
            if isinstance(node, dict) and key not in node:
                node[key] = {}
            node = node[key]
    return result


def parse_value(raw: str) -> Any:
    """A --set value: JSON when it parses (numbers, true, null, "quoted", objects), else the string."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def edit(conn: Connection, event_id: str, sets: Iterable[tuple[str, Any]], now: datetime) -> Any:
    """Apply PATH=VALUE edits to a dead event's payload, validate through its connector, save.

    The raw request stays byte-exact in the event; the payload before the first edit is kept on the
    dead letter.
    """
    row = conn.execute(select(events).where(events.c.id == event_id)).first()
    letter = conn.execute(select(dead_letters).where(dead_letters.c.event_id == event_id)).first()
    if row is None or letter is None:
        raise NoDeadLetter(f"no dead letter {event_id}")
    if letter.state != LetterState.DEAD:
        raise NotDead(f"{event_id} was replayed already; only a dead letter waiting for replay can be edited")
    original = payload = row.payload
    for path, value in sets:
        payload = set_path(payload, path, value)
    envelope = Envelope.from_row(row).model_copy(update={"payload": payload})
    try:
        registry.get(row.vendor).normalize(envelope)
    except (HookyardError, ValueError) as exc:
        raise EditRejected(f"the edited payload still does not validate: {exc}") from None
    conn.execute(update(events).where(events.c.id == event_id).values(payload=payload))
    if letter.original_payload is None:
        conn.execute(
            update(dead_letters)
            .where(dead_letters.c.event_id == event_id)
            .values(original_payload=original, edited_at=now)
        )
    else:
        conn.execute(update(dead_letters).where(dead_letters.c.event_id == event_id).values(edited_at=now))
    return payload


def _aged(filters: Filters, older_than: timedelta | None, now: datetime) -> Any:
    where = filters.where()
    return where if older_than is None else and_(where, dead_letters.c.died_at < now - older_than)


def purge_count(conn: Connection, filters: Filters, older_than: timedelta | None, *, now: datetime) -> int:
    """How many dead letters `purge` would delete with the same arguments (for its confirmation)."""
    return conn.execute(
        select(func.count()).select_from(dead_letters).where(_aged(filters, older_than, now))
    ).scalar_one()


def purge(conn: Connection, filters: Filters, older_than: timedelta | None, *, now: datetime) -> int:
    """Delete matching dead letters. A dead event loses its attempt log and is marked purged (the row
    stays, so a vendor's retry of the same delivery is still recognised as a duplicate); an event that
    was replayed keeps its history, only its dead-letter record goes."""
    ids = [
        r.event_id
        for r in conn.execute(select(dead_letters.c.event_id).where(_aged(filters, older_than, now)))
    ]
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        dead = select(events.c.id).where(events.c.id.in_(chunk), events.c.state == EventState.DEAD)
        conn.execute(delete(attempts).where(attempts.c.event_id.in_(dead)))
        conn.execute(delete(dead_letters).where(dead_letters.c.event_id.in_(chunk)))
        conn.execute(
            update(events)
            .where(events.c.id.in_(chunk), events.c.state == EventState.DEAD)
            .values(state=EventState.PURGED, payload=None)
        )
    return len(ids)


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `12h`, `30d`, `2w` → timedelta; anything longer than MAX_AGE is MAX_AGE (no dead
    letter is older, and a date that far back does not exist)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = text.strip().lower()
    if not _DURATION.fullmatch(text):
        raise MalformedError(f"duration {text!r}: use a number and one of s, m, h, d, w (e.g. 7d)")
    seconds = float(text[:-1]) * units[text[-1]]
    return timedelta(seconds=min(seconds, MAX_AGE.total_seconds()))


Publish = Callable[[list[tuple[str, str]]], int]


def replay(
    engine: Engine,
    targets: Sequence[tuple[str, str]],
    *,
    publish: Publish,
    actor: str,
    rate_per_s: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    move: Callable[[Connection, str, datetime], bool] = replay_one,
    audit_key: str = "event_ids",
) -> tuple[int, int]:
    """Replay in chunks (one transaction each, then publish), paced to `rate_per_s`.

    Interrupting loses nothing: what was replayed is marked, and the same replay run again takes
    only what is still dead. Returns (replayed, skipped: no longer dead). `move` replays one target
    (an event by default; `events.runs.replay_one` for actions, with audit_key "run_ids").
    """
    size = max(1, int(rate_per_s)) if rate_per_s else 100
    replayed = skipped = 0
    for start in range(0, len(targets), size):
        began = clock()
        chunk = targets[start : start + size]
        with engine.begin() as conn:
            now = utcnow()
            moved = [(key, queue) for key, queue in chunk if move(conn, key, now)]
            if moved:
                audit.record(conn, actor, "dlq.replay", None, {audit_key: [e for e, _ in moved]})
        if moved:
            publish(moved)  # if this fails the relay publishes them: they are `accepted` now
        replayed += len(moved)
        skipped += len(chunk) - len(moved)
        if progress is not None:
            progress(replayed + skipped, len(targets))
        if rate_per_s and start + size < len(targets):
            sleep(max(0.0, len(chunk) / rate_per_s - (clock() - began)))
    return replayed, skipped
