"""Event-driven fetches, the running side: claim a due `object_fetches` row, read the object whole
through its stream, store it as the API's copy, and say when (if ever) it goes again.

    outcome = run(engine, deps, "desk", "tickets", "4521")     # the task `hookyard.fetch.run`
    sweep(engine, now=…, requeue_s=60)                          # beat: what is due and unsent

1. **Claim.** One conditional UPDATE leases the row if it is `pending` and due, or `running` under a
   lapsed lease (its worker died): a message early, late or twice finds nothing to do (`not_due`).
2. **Skip.** The idempotency key (vendor, source, object, version): when every ask announced a
   version and the last fetch already read it or a newer one, no call is made (`skipped_read`).
3. **Fetch** at real-time priority (the budget serves it before backfills), then ONE transaction:
   store the records (`whole`: at the same version the API's copy replaces a webhook's), fence on
   the lease, note the version read, and end the row `done` — or `pending` again, one window on,
   when events asked while the call was in flight for a version newer than it read (or none).
4. **Fail.** The vendor's breaker open, or its budget saying wait: `pending` until the breaker's
   next probe (at most one open interval: while another caller probes, its answer comes within
   one), or the wait; no attempt used (`waiting_breaker`): an outage never fails a fetch.
   Another transient failure: backoff, attempts counted (`retry`), `failed` once they run out. A
   refusal retrying cannot fix (404, 401/403: the source is flagged): `failed`. A failed row stays
   for operators (`sync status`); the next event about the object starts again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, and_, or_, select, update

from events import flags, metrics
from events.db import object_fetches
from events.fetches import FetchState
from schemas.errors import CircuitOpen, Throttled, TransientError
from schemas.retry import RetryPolicy, Verdict, classify
from workers.sync_store import store_page
from workers.syncing import ERROR_CHARS, Deps, fetch_run_id, read_one

log = structlog.get_logger()

FETCH_RETRY = RetryPolicy(max_attempts=8, base_s=5.0, cap_s=600.0)  # failures, not breaker waits
MIN_WAIT_S = 1.0  # a breaker about to let its probe go: try again after this at the soonest


class Outcome(StrEnum):
    FETCHED = "fetched"
    SKIPPED = "skipped_read"  # every version asked for was read meanwhile: no call
    WAITING = "waiting_breaker"
    RETRY = "retry"
    FAILED = "failed"
    NOT_DUE = "not_due"  # not claimable: not due, running elsewhere, done, or gone
    LOST_LEASE = "lost_lease"


@dataclass(frozen=True)
class Claimed:
    token: str
    requests: int
    attempts: int
    wanted_version: datetime | None
    fetched_version: datetime | None


def _key(source: str, stream: str, object_id: str) -> Any:
    c = object_fetches.c
    return and_(c.source == source, c.stream == stream, c.object_id == object_id)


def _claimable(now: datetime) -> Any:
    c = object_fetches.c
    return or_(
        and_(c.state == FetchState.PENDING, c.due_at <= now),
        and_(c.state == FetchState.RUNNING, c.lease_until < now),
    )


def claim(engine: Engine, deps: Deps, source: str, stream: str, object_id: str) -> Claimed | None:
    token = uuid.uuid4().hex
    with engine.begin() as conn:
        now = deps.clock()
        c = object_fetches.c
        row = conn.execute(
            update(object_fetches)
            .where(_key(source, stream, object_id), _claimable(now))
            .values(
                state=FetchState.RUNNING,
                lease_token=token,
                lease_until=now + timedelta(seconds=deps.lease_s),
                queued_at=None,
            )
            .returning(c.requests, c.attempts, c.wanted_version, c.fetched_version)
        ).first()
    if row is None:
        return None
    return Claimed(token, row.requests, row.attempts, row.wanted_version, row.fetched_version)


def run(engine: Engine, deps: Deps, source: str, stream: str, object_id: str) -> Outcome:
    """The fetch of one object, if it is due (see the module docstring)."""
    with structlog.contextvars.bound_contextvars(source=source, stream=stream, object_id=object_id):
        return _run(engine, deps, source, stream, object_id)


def _run(engine: Engine, deps: Deps, source: str, stream: str, object_id: str) -> Outcome:
    claimed = claim(engine, deps, source, stream, object_id)
    if claimed is None:
        return Outcome.NOT_DUE
    key = (source, stream, object_id)
    wanted, fetched = claimed.wanted_version, claimed.fetched_version
    if wanted is not None and fetched is not None and wanted <= fetched:
        return _end(engine, deps, key, claimed, Outcome.SKIPPED, fetched)
    try:
        configured, page = read_one(deps, source, stream, object_id)
    except Exception as exc:
        return _fail(engine, deps, key, claimed, exc)
    versions = [r.updated_at for r in page.records if r.updated_at is not None]
    read = max([*versions, *([wanted] if wanted else [])], default=None)
    with engine.begin() as conn:  # records first, then the row: the lock order processing takes
        counts = store_page(
            conn,
            vendor=configured.connector,
            source=source,
            stream=stream,
            run_id=fetch_run_id(),
            page=page,
            now=deps.clock(),
            whole=True,
        )
        outcome = _finish(conn, deps, key, claimed, Outcome.FETCHED, read)
        if outcome is Outcome.LOST_LEASE:
            conn.rollback()
            return outcome
    _count(key, outcome)
    log.info("fetch.done", outcome=str(outcome), requests=claimed.requests, **counts.values())
    return outcome


def _end(
    engine: Engine,
    deps: Deps,
    key: tuple[str, str, str],
    claimed: Claimed,
    outcome: Outcome,
    version: datetime | None,
) -> Outcome:
    with engine.begin() as conn:
        outcome = _finish(conn, deps, key, claimed, outcome, version)
    _count(key, outcome)
    log.info("fetch.done", outcome=str(outcome), requests=claimed.requests)
    return outcome


def _finish(
    conn: Connection,
    deps: Deps,
    key: tuple[str, str, str],
    claimed: Claimed,
    outcome: Outcome,
    version: datetime | None,
) -> Outcome:
    """Fenced on the lease: `done`, or `pending` one window on if events asked during the call."""
    c = object_fetches.c
    now = deps.clock()
    row = conn.execute(
        select(c.requests, c.fetched_version, c.wanted_version)
        .where(_key(*key), c.lease_token == claimed.token)
        .with_for_update()
    ).first()
    if row is None:
        log.warning("fetch.lease_lost")
        return Outcome.LOST_LEASE
    known = [v for v in (version, row.fetched_version) if v is not None]
    read = max(known, default=None)
    values: dict[str, Any] = {
        "fetched_version": read,
        "lease_token": None,
        "lease_until": None,
        "attempts": 0,
        "waits": 0,
        "last_error": None,
    }
    asked_since = row.requests - claimed.requests
    covered = read is not None and row.wanted_version is not None and row.wanted_version <= read
    if asked_since > 0 and not covered:  # an ask during the call may be newer than what was read
        window = deps.sources[key[0]].fetch if key[0] in deps.sources else None
        values |= {
            "state": FetchState.PENDING,
            "due_at": now + timedelta(seconds=window.window_s if window else 0.0),
            "first_asked_at": now,
            "requests": asked_since,
        }
    else:
        values |= {"state": FetchState.DONE, "requests": 0, "wanted_version": None}
    if outcome is Outcome.FETCHED:
        values["fetched_at"] = now
    conn.execute(update(object_fetches).where(_key(*key)).values(**values))
    return outcome


def _fail(engine: Engine, deps: Deps, key: tuple[str, str, str], claimed: Claimed, exc: Exception) -> Outcome:
    """A wait for the breaker or the budget (no attempt used), a backoff, or the end."""
    error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
    verdict = classify(exc)
    now = deps.clock()
    hint = exc.retry_after_s if isinstance(exc, TransientError) else None
    c = object_fetches.c
    values: dict[str, Any] = {"lease_token": None, "lease_until": None, "last_error": error}
    if isinstance(exc, CircuitOpen | Throttled):
        outcome = Outcome.WAITING
        wait_s = max(hint if hint is not None else MIN_WAIT_S, MIN_WAIT_S)
        if isinstance(exc, CircuitOpen):  # half-open: another caller's probe decides within an interval
            wait_s = min(wait_s, max(deps.breaker_open_s, MIN_WAIT_S))
        values |= {
            "state": FetchState.PENDING,
            "due_at": now + timedelta(seconds=wait_s),
            "waits": c.waits + 1,
        }
    elif verdict is Verdict.RETRY and claimed.attempts + 1 < FETCH_RETRY.max_attempts:
        outcome = Outcome.RETRY
        wait_s = hint if hint is not None else FETCH_RETRY.backoff_s(claimed.attempts + 1, deps.rand)
        values |= {
            "state": FetchState.PENDING,
            "due_at": now + timedelta(seconds=max(wait_s, MIN_WAIT_S)),
            "attempts": claimed.attempts + 1,
        }
    else:
        outcome = Outcome.FAILED
        values |= {"state": FetchState.FAILED, "attempts": claimed.attempts + 1}
    with engine.begin() as conn:
        fenced = conn.execute(
            update(object_fetches).where(_key(*key), c.lease_token == claimed.token).values(**values)
        ).rowcount
        if fenced != 1:
            log.warning("fetch.lease_lost")
            return Outcome.LOST_LEASE
        if outcome is Outcome.FAILED and verdict is Verdict.REAUTHORIZE:
            flags.flag(conn, key[0], error, now)
    _count(key, outcome)
    level = log.error if outcome is Outcome.FAILED else log.warning
    level("fetch.failed" if outcome is Outcome.FAILED else "fetch.waiting", outcome=str(outcome), error=error)
    return outcome


def _count(key: tuple[str, str, str], outcome: Outcome) -> None:
    if outcome is not Outcome.LOST_LEASE:
        metrics.FETCHES.labels(key[0], key[1], str(outcome)).inc()


def sweep(engine: Engine, *, now: datetime, requeue_s: float) -> list[tuple[str, str, str]]:
    """Mark sent, and return, every fetch that is due (or whose worker died) and has no message on
    its way: none sent yet (a wait or a backoff ended), or one sent over `requeue_s` ago and not
    started. The caller sends them after this commit; a lost message is sent again after requeue_s."""
    c = object_fetches.c
    unsent = or_(c.queued_at.is_(None), c.queued_at < now - timedelta(seconds=requeue_s))
    with engine.begin() as conn:
        due = conn.execute(
            update(object_fetches)
            .where(_claimable(now), unsent)
            .values(queued_at=now)
            .returning(c.source, c.stream, c.object_id)
        ).all()
    return [(row.source, row.stream, row.object_id) for row in due]
