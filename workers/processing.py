"""Process one stored event exactly once in effect.

claim (lease + fencing token) → normalize through the connector → forward (if configured, with an
Idempotency-Key) → in ONE transaction: check the token still holds, upsert the records, ask for the
fetches the source wants (events.fetches), mark done, record the attempt. A second delivery of the
same id finds the event leased or done and does nothing; a worker that dies mid-way leaves a lease
that expires, and the relay re-drives the event. A failure is recorded and either waits for its
retry in the database or becomes a dead letter.
"""

from __future__ import annotations

import random
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Any

import httpx
import structlog
from sqlalchemy import Connection, Engine, and_, bindparam, insert, not_, or_, select, update
from sqlalchemy.exc import DataError, IntegrityError

from connectors import registry
from events import fetches, flags, metrics
from events.db import (
    AttemptOutcome,
    EventState,
    LetterState,
    attempts,
    dead_letters,
    dialect_insert,
    events,
    records,
    text_limit,
    utcnow,
)
from events.queue import PROCESS_TASK, publish, publish_fetches
from events.sources import Source
from schemas.envelope import Envelope
from schemas.errors import InvalidPayload, WorkerLost
from schemas.records import Record
from schemas.retry import RetryPolicy, Verdict
from workers import leases
from workers.automation import Automation
from workers.forward import forward

log = structlog.get_logger()


class Outcome(StrEnum):
    DONE = "done"
    SKIPPED = "skipped"  # not claimable: done, dead, or leased by another worker
    LOST_LEASE = "lost_lease"  # our lease expired and another worker took over
    RETRY = "retry"
    DEAD = "dead"
    HANDED_BACK = "handed_back"  # claimed, not worked on: the worker is stopping (workers.stopping)


PublishFetches = Callable[[list[tuple[str, str, str, float]]], None]


@dataclass(frozen=True)
class Context:
    """What processing needs besides the database: configuration, an HTTP client, randomness, time."""

    sources: Mapping[str, Source]
    lease_s: float
    http: httpx.Client | None = None
    rand: Callable[[], float] = random.random
    clock: Callable[[], datetime] = utcnow
    fault_delay_s: float = 0.0
    automation: Automation | None = None  # the rules, when the sources file names a folder of them
    publish_fetches: PublishFetches = publish_fetches  # sends the fetches events ask for
    stopping: Callable[[], bool] = lambda: False  # the worker is stopping: hand back what is not begun


def policy_for(vendor: str, source: Source | None) -> RetryPolicy:
    """The connector's policy (or the default), with the source's overrides."""
    policy = registry.get(vendor).retry_policy
    if source is None:
        return policy
    overrides = {k: v for k, v in source.retry.model_dump().items() if v is not None}
    return RetryPolicy(**{**policy.__dict__, **overrides})


# The per-event statements are built once: building SQLAlchemy Core statements on every call cost
# more CPU than running them (BENCHMARKS.md, worker profile).
_TIME = events.c.available_at.type
_CLAIM = leases.claim_statement(
    events,
    ready=(EventState.ACCEPTED,),
    waiting=(EventState.RETRY, EventState.PROCESSING),
    running=EventState.PROCESSING,
)
_HAND_BACK = leases.hand_back_statement(
    events, fresh=EventState.ACCEPTED, waiting=EventState.RETRY, running=EventState.PROCESSING
)


FETCH_RUN_PREFIX = "fetch:"  # the run_id of a record an event-driven fetch (or a rule's) wrote


@cache
def _upsert(dialect_name: str) -> Any:
    """INSERT … ON CONFLICT DO UPDATE for records; an older vendor timestamp never wins. Events and
    syncs (workers/sync_store.py) share it; `run_id` says a sync wrote the row, `event_id` an event.
    At the same timestamp a webhook does not replace what a fetch read: the API's copy of a version
    is whole, a webhook's may be partial (and a fetch replaces a webhook's, workers.sync_store)."""
    stmt = dialect_insert(dialect_name)(records)
    return stmt.on_conflict_do_update(
        index_elements=["vendor", "kind", "external_id"],
        set_={
            "data": stmt.excluded.data,
            "updated_at": stmt.excluded.updated_at,
            "event_id": stmt.excluded.event_id,
            "run_id": stmt.excluded.run_id,
            "version": records.c.version + 1,
        },
        where=or_(
            records.c.updated_at.is_(None),
            stmt.excluded.updated_at.is_(None),
            stmt.excluded.updated_at > records.c.updated_at,
            and_(
                stmt.excluded.updated_at == records.c.updated_at,
                or_(
                    stmt.excluded.event_id.is_(None),
                    records.c.run_id.is_(None),
                    not_(records.c.run_id.startswith(FETCH_RUN_PREFIX)),
                ),
            ),
        ),
    )


def claim(conn: Connection, event_ids: Sequence[str], token: str, now: datetime, lease_s: float) -> list[Any]:
    """Take the lease on every claimable event among `event_ids` in one statement; their rows."""
    rows = list(conn.execute(_CLAIM, leases.claim_params(event_ids, token, now, lease_s)))
    for row in rows:
        if row.attempts > 1:
            _note_lost_attempt(conn, row, now)
    return rows


def _lost_before(conn: Connection, rows: Sequence[Any]) -> set[str]:
    """The claimed events whose previous attempt died with its worker (noted by `claim`)."""
    again = {row.id: row.attempts - 1 for row in rows if row.attempts > 1}
    if not again:
        return set()
    lost = conn.execute(
        select(attempts.c.event_id, attempts.c.number).where(
            attempts.c.event_id.in_(list(again)), attempts.c.outcome == AttemptOutcome.LEASE_EXPIRED
        )
    )
    return {event_id for event_id, number in lost if again[event_id] == number}


def _note_lost_attempt(conn: Connection, row: Any, now: datetime) -> None:
    """The previous attempt left no record: its worker died holding the lease."""
    previous = row.attempts - 1
    seen = conn.execute(
        select(attempts.c.id).where(attempts.c.event_id == row.id, attempts.c.number == previous)
    ).first()
    if seen is None:
        conn.execute(
            insert(attempts).values(
                event_id=row.id, number=previous, started_at=now, outcome=AttemptOutcome.LEASE_EXPIRED
            )
        )


def upsert_records(conn: Connection, items: Sequence[tuple[str, str, Record]]) -> None:
    """Upsert (vendor, event id, record) triples; an older vendor timestamp never wins.

    One executemany (psycopg pipelines it into one round trip), applied in order, so two items with
    the same key behave as two upserts in a row."""
    if items:
        conn.execute(
            _upsert(conn.dialect.name),
            [
                {
                    "vendor": vendor,
                    "kind": r.kind,
                    "external_id": r.external_id,
                    "data": r.data(),
                    "updated_at": r.updated_at,
                    "event_id": event_id,
                    "version": 1,
                }
                for vendor, event_id, r in items
            ],
        )


def _fence(conn: Connection, event_id: str, token: str, **values: Any) -> bool:
    return leases.fence(conn, events, event_id, token, EventState.PROCESSING, **values)


_FINISH = (
    update(events)
    .where(
        events.c.id.in_(bindparam("b_ids", expanding=True)),
        events.c.lease_token == bindparam("b_token"),
        events.c.state == EventState.PROCESSING,
    )
    .values(
        state=EventState.DONE, processed_at=bindparam("b_now", type_=_TIME), lease_token=None, last_error=None
    )
    .returning(events.c.id)
)


def finish(conn: Connection, event_ids: Sequence[str], token: str, now: datetime) -> set[str]:
    """Mark done those whose lease we still hold (the row locks also fence late claimers)."""
    return {r.id for r in conn.execute(_FINISH, {"b_ids": list(event_ids), "b_token": token, "b_now": now})}


def _attempt_row(
    row: Any, started: datetime, ended: datetime, outcome: AttemptOutcome, error: BaseException | None = None
) -> dict[str, Any]:
    return {
        "event_id": row.id,
        "number": row.attempts,
        "started_at": started,
        "outcome": outcome,
        "duration_ms": int((ended - started).total_seconds() * 1000),
        "error_class": type(error).__name__ if error else None,
        "error_message": str(error)[:4000] if error else None,
    }


def fail(
    engine: Engine,
    row: Any,
    token: str,
    error: BaseException,
    policy: RetryPolicy,
    started: datetime,
    now: datetime,
    rand: Callable[[], float],
) -> Outcome:
    """Record the failure; retry later when it is transient and attempts remain, else dead-letter."""
    tried = row.attempts - row.attempts_before_replay  # a replay starts a fresh budget
    step = leases.after_failure(error, policy, tried, now, rand)
    with engine.begin() as conn:
        if step.due is not None:
            if not _fence(
                conn,
                row.id,
                token,
                state=EventState.RETRY,
                available_at=step.due,
                relay_at=step.due,
                last_error=step.message,
            ):
                conn.rollback()
                return Outcome.LOST_LEASE
            conn.execute(insert(attempts), [_attempt_row(row, started, now, AttemptOutcome.RETRY, error)])
            return Outcome.RETRY
        if not _fence(conn, row.id, token, state=EventState.DEAD, last_error=step.message):
            conn.rollback()
            return Outcome.LOST_LEASE
        conn.execute(insert(attempts), [_attempt_row(row, started, now, AttemptOutcome.DEAD, error)])
        _dead_letter(conn, row, error, now)
        if step.verdict is Verdict.REAUTHORIZE:
            flags.flag(conn, row.source, step.message, now)
    return Outcome.DEAD


def _dead_letter(conn: Connection, row: Any, error: BaseException, now: datetime) -> None:
    values = {
        "source": row.source,
        "vendor": row.vendor,
        "type": row.type,
        "task": PROCESS_TASK,
        "args": [[row.id]],
        "error_class": type(error).__name__,
        "error_message": str(error)[:4000],
        "traceback": "".join(traceback.format_exception(error))[-16000:],
        "attempts": row.attempts,
        "died_at": now,
        "state": LetterState.DEAD,
    }
    stmt = dialect_insert(conn.dialect.name)(dead_letters).values(event_id=row.id, replays=0, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["event_id"], set_=values))


def process(engine: Engine, event_id: str, ctx: Context) -> Outcome:
    return process_many(engine, [event_id], ctx)[event_id]


def process_many(engine: Engine, event_ids: Sequence[str], ctx: Context) -> dict[str, Outcome]:
    """Claim the events in one statement, normalize (and forward) each, then finish every one that
    succeeded in one transaction; each keeps its own fencing, failures are handled one by one.

    Batching is for speed only: if the shared finishing transaction fails, each event is finished
    again in a transaction of its own, so one event whose records the database refuses fails alone.
    An event whose previous attempt died with its worker runs alone, after the others are finished
    (the relay also sends it alone); once such lost attempts use up its budget it is dead-lettered
    (WorkerLost) instead of taking another worker down.
    """
    token = uuid.uuid4().hex
    started = ctx.clock()
    outcomes = dict.fromkeys(event_ids, Outcome.SKIPPED)
    failed: list[tuple[Any, BaseException]] = []
    with engine.connect() as conn:  # one checkout for the claim and the finish
        with conn.begin():
            rows = claim(conn, event_ids, token, started, ctx.lease_s)
            suspects = _lost_before(conn, rows)
        batches = [[row for row in rows if row.id not in suspects]]
        for row in rows:
            if row.id not in suspects:
                continue
            tried = row.attempts - row.attempts_before_replay
            budget = policy_for(row.vendor, ctx.sources.get(row.source)).max_attempts
            if tried > budget:  # only a lost attempt can overrun it: a failed last one is dead already
                failed.append(
                    (row, WorkerLost(f"the worker died during attempt {tried - 1}, the last of {budget}"))
                )
            else:  # alone, after the others are done: if it takes its worker down again, only itself
                batches.append([row])
        unbegun: list[Any] = []
        for batch in batches:
            _run(conn, batch, token, started, ctx, outcomes, failed, unbegun)
    if unbegun:
        outcomes.update(hand_back(engine, unbegun, token, ctx.clock()))
    for row, error in failed:  # on fresh connections: the failure may have been this one's
        structlog.contextvars.bind_contextvars(event_id=row.id, source=row.source, attempt=row.attempts)
        policy = policy_for(row.vendor, ctx.sources.get(row.source))
        outcomes[row.id] = fail(engine, row, token, error, policy, started, ctx.clock(), ctx.rand)
        log.warning("event.failed", error=repr(error), outcome=str(outcomes[row.id]))
        if outcomes[row.id] in (Outcome.RETRY, Outcome.DEAD):
            counter = metrics.RETRIES if outcomes[row.id] is Outcome.RETRY else metrics.DEAD_LETTERS
            counter.labels(row.source, type(error).__name__).inc()
    elapsed_s = (utcnow() - started).total_seconds()
    for row in rows:
        metrics.PROCESSING.labels(row.source, str(outcomes[row.id])).observe(elapsed_s)
    return outcomes


def _send_fetches(
    asked: Sequence[tuple[fetches.Ask, fetches.Asked, datetime]], now: datetime, publish: PublishFetches
) -> None:
    """After the commit: count the asks and send the scheduled fetches, each to run when its window
    ends (a failed send is the sweeper's to make up)."""
    due = []
    for ask, outcome, due_at in asked:
        metrics.FETCHES.labels(ask.source, ask.stream, str(outcome)).inc()
        if outcome is fetches.Asked.SCHEDULED:
            due.append((ask.source, ask.stream, ask.object_id, (due_at - now).total_seconds()))
    if not due:
        return
    try:
        publish(due)
    except Exception as exc:
        log.warning("fetch.publish_failed", error=repr(exc), fetches=len(due), detail="the sweeper will")


def _run(
    conn: Connection,
    rows: Sequence[Any],
    token: str,
    started: datetime,
    ctx: Context,
    outcomes: dict[str, Outcome],
    failed: list[tuple[Any, BaseException]],
    unbegun: list[Any],
) -> None:
    """Normalize (and forward) each claimed event, then finish those that succeeded in one
    transaction, one by one if that fails; failures go to `failed`, and those not begun because
    the worker is stopping to `unbegun`."""
    ready: list[tuple[Any, list[Record]]] = []
    for row in rows:
        if ctx.stopping():
            unbegun.append(row)
            continue
        try:
            ready.append((row, _prepare(row, ctx)))
        except Exception as exc:
            failed.append((row, exc))
    if ready and ctx.fault_delay_s and not _pause(ctx.fault_delay_s, ctx.stopping):
        unbegun += [row for row, _ in ready]  # a drill's slow work, interrupted: not done
        ready.clear()
    try:
        outcomes.update(_finish(conn, ready, token, started, ctx))
    except Exception as exc:
        if len(ready) > 1:
            log.warning("event.batch_finish_failed", error=repr(exc), events=len(ready))
        for item in ready if len(ready) > 1 else ():
            try:
                outcomes.update(_finish(conn, [item], token, started, ctx))
            except Exception as alone:
                failed.append((item[0], _own_fault(alone)))
        if len(ready) == 1:
            failed.append((ready[0][0], _own_fault(exc)))


def _pause(seconds: float, stopping: Callable[[], bool]) -> bool:
    """Sleep `seconds` unless asked to stop first (False)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if stopping():
            return False
        time.sleep(min(left, 0.1))
    return True


def release(conn: Connection, event_ids: Sequence[str], token: str, now: datetime) -> set[str]:
    """Release our leases on events not begun: claimable by anyone at `now`; the ids released."""
    params = {"b_ids": list(event_ids), "b_token": token, "b_now": now}
    return {r.id for r in conn.execute(_HAND_BACK, params)}


def hand_back(engine: Engine, rows: Sequence[Any], token: str, now: datetime) -> dict[str, Outcome]:
    """Claimed events this worker will not process (it is stopping): the lease released, the attempt
    uncounted, published again at once (if that fails, the relay sends them: they are due now)."""
    with engine.begin() as conn:
        back = release(conn, [row.id for row in rows], token, now)
    try:
        publish((row.id, row.vendor) for row in rows if row.id in back)
    except Exception as exc:
        log.warning("event.hand_back_unpublished", events=len(back), error=repr(exc))
    log.info("event.handed_back", events=len(back))
    return {row.id: Outcome.HANDED_BACK if row.id in back else Outcome.LOST_LEASE for row in rows}


def _own_fault(error: BaseException) -> BaseException:
    """The database refused this event's own data (its records): no retry can change that."""
    if isinstance(error, DataError | IntegrityError):
        reason = (str(error.orig).splitlines() or ["no reason given"])[0][:500]
        return InvalidPayload(f"the database refused this event's records: {reason}")
    return error


def _prepare(row: Any, ctx: Context) -> list[Record]:
    """Normalize through the connector, and forward downstream when the source says so."""
    envelope = Envelope.from_row(row)
    items = registry.get(row.vendor).normalize(envelope)
    for item in items:
        _check_key(item)
    source = ctx.sources.get(row.source)
    if source is not None and source.forward is not None and ctx.http is not None:
        forward(ctx.http, source.forward, envelope, items)
    return items


EXTERNAL_ID_MAX = text_limit(records, "external_id")


def _check_key(record: Record) -> None:
    """A record key every database can store, checked before it can fail a shared transaction."""
    key = record.external_id
    if len(key) > EXTERNAL_ID_MAX or "\x00" in key:
        raise InvalidPayload(
            f"{record.kind} id {key[:60]!r}… cannot be stored: at most {EXTERNAL_ID_MAX} characters, no NUL"
        )


def _finish(
    conn: Connection,
    ready: Sequence[tuple[Any, list[Record]]],
    token: str,
    started: datetime,
    ctx: Context,
) -> dict[str, Outcome]:
    """One transaction: fence on our leases, upsert the records of those still ours, record the
    actions their rules set off, mark them done."""
    if not ready:
        return {}
    recorded = None
    with conn.begin():
        now = ctx.clock()
        done = finish(conn, [row.id for row, _ in ready], token, now)
        kept = [(row, items) for row, items in ready if row.id in done]
        upsert_records(conn, [(row.vendor, row.id, item) for row, items in kept for item in items])
        asked = fetches.request(conn, [a for row, _ in kept for a in fetches.asks_of(row, ctx.sources)], now)
        if kept:
            conn.execute(
                insert(attempts), [_attempt_row(row, started, now, AttemptOutcome.DONE) for row, _ in kept]
            )
            if ctx.automation is not None:
                recorded = ctx.automation.record(conn, kept, now)
    if recorded is not None and ctx.automation is not None:
        ctx.automation.settle(recorded)
    _send_fetches(asked, now, ctx.publish_fetches)
    for row, items in ready:
        if row.id in done:
            log.info("event.processed", event_id=row.id, source=row.source, type=row.type, records=len(items))
            metrics.END_TO_END.labels(row.source).observe((utcnow() - row.received_at).total_seconds())
        else:
            log.warning("event.lease_lost", event_id=row.id, source=row.source)
    return {row.id: Outcome.DONE if row.id in done else Outcome.LOST_LEASE for row, _ in ready}
