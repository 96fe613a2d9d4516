"""Run one sync of one (source, stream): lease, walk, checkpoint after every page, record the run.

    result = run(engine, deps, "shop", "orders", slot="beat-28333333", triggered_by="beat")

1. **Claim.** The stream's cursor row is leased (a fencing token and an expiry, as events are) by one
   conditional UPDATE: a stream another run holds is `busy` and nothing happens. The run's row is then
   inserted with its (source, stream, slot): a second beat, an overlapping schedule or a redelivered
   message of a slot that already ran finds it and stops (`duplicate`). A run whose worker died is
   marked `abandoned`; a redelivery of its own slot takes it over and goes on from its checkpoint.
2. **Walk.** Every page is ONE transaction: check the lease token still holds, upsert the records
   (workers.sync_store), quarantine the rejected items, add the counts to the run, move the cursor,
   extend the lease. A SIGKILL anywhere loses only the page in flight; the resumed run reads it again
   and its records upsert as no-ops: no gap, no duplicate effect. A run that loses its lease (it
   stalled past it and another took over) stops at its next page without writing it.
3. **End.** `done` when the walk reached the present. Otherwise the run stops early and the database
   says when it goes on (`resume_at`, which the sweeper turns into a run): out of time for its slice
   (`partial`, at once), throttled or the breaker open (`waiting`, as long as the vendor or the budget
   asks), a transient failure (`waiting`, backoff over the failures in a row), or a refusal retrying
   cannot fix (`failed`: the next scheduled run starts again from the checkpoint; a 401/403 flags the
   source, and its syncs stop until an operator clears the flag). Never a Celery countdown.

`fetch_one` reads and stores one object by id through the same store, outside any walk; event-driven
fetches (workers.fetching) read through the same `read_one`.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import redis
import structlog
from sqlalchemy import Connection, Engine, and_, or_, select, update

from connectors import registry
from connectors.breaker import Breaker
from connectors.budget import Budget, Priority
from connectors.http import VendorClient
from connectors.streams import Cursor, Page, Reader, Stream
from connectors.tokens import TokenAuth
from events import flags, metrics
from events.db import dialect_insert, source_flags, sync_cursors, sync_runs, utcnow
from events.sources import Source
from schemas.errors import ConfigError, TransientError
from schemas.retry import RetryPolicy, Verdict, classify
from workers.processing import FETCH_RUN_PREFIX
from workers.sync_store import Counts, store_page

log = structlog.get_logger()

SYNC_RETRY = RetryPolicy(max_attempts=1_000_000, base_s=5.0, cap_s=900.0)  # waits only; runs go on
ERROR_CHARS = 4000


class RunStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"  # the walk reached the present
    PARTIAL = "partial"  # out of time for its slice: goes on at once
    WAITING = "waiting"  # throttled, breaker open or a transient failure: goes on at resume_at
    FAILED = "failed"  # retrying cannot help; the next scheduled run starts from the checkpoint
    ABANDONED = "abandoned"  # its worker died (or stalled) holding the lease
    BUSY = "busy"  # not run: another run holds the stream
    DUPLICATE = "duplicate"  # not run: this slot already ran
    FLAGGED = "flagged"  # not run: the source needs re-authorization


@dataclass(frozen=True)
class Deps:
    """What a run needs besides the database."""

    sources: Mapping[str, Source]
    client_for: Callable[[Source], VendorClient]
    lease_s: float = 120.0
    slice_s: float = 300.0
    breaker_open_s: float = 30.0  # an open breaker's interval: a fetch looks again after at most this
    retry: RetryPolicy = SYNC_RETRY
    clock: Callable[[], datetime] = utcnow
    monotonic: Callable[[], float] = time.monotonic
    rand: Callable[[], float] = random.random
    stopping: Callable[[], bool] = lambda: False  # the worker is stopping: end the slice after this page


@dataclass
class RunResult:
    status: RunStatus
    run_id: str | None = None
    counts: Counts = field(default_factory=Counts)
    cursor: Cursor | None = None
    error: str | None = None
    resume_at: datetime | None = None


class LeaseLost(Exception):
    """Another run took the stream over: this one must not write its page."""


def target(sources: Mapping[str, Source], source_name: str, stream_name: str) -> tuple[Source, Stream]:
    """The configured source and its connector's stream (ConfigError naming what is missing)."""
    source = sources.get(source_name)
    if source is None:
        raise ConfigError(f"no source named {source_name!r}")
    api = registry.get(source.connector).api
    if source.api.access is None or api is None:
        raise ConfigError(f"source {source_name!r} has no vendor API (base_url, token): it cannot sync")
    stream = api.streams.get(stream_name)
    if stream is None:
        raise ConfigError(
            f"{source.connector} has no stream {stream_name!r}; it has {', '.join(api.streams)}"
        )
    return source, stream


def client_for(
    source: Source,
    redis_client: redis.Redis | None,
    *,
    auth: TokenAuth | None = None,
    breaker_failures: int = 5,
    breaker_open_s: float = 30.0,
) -> VendorClient:
    """The source's vendor client: its credentials (a static token, or `auth` from its OAuth
    connection, refreshed as it goes), and with Redis its shared budget and breaker."""
    api = registry.get(source.connector).api
    access = source.api.access
    if access is None or api is None:
        raise ConfigError(f"source {source.name!r} has no vendor API configured")
    if access.token is None and auth is None:
        raise ConfigError(f"source {source.name!r} takes its token from its OAuth connection: none given")
    vendor, account = source.connector, source.name
    return VendorClient(
        vendor,
        account,
        access.base_url,
        headers={} if access.token is None else api.headers(access.token.get_secret_value(), access.user),
        auth=auth if access.token is None else None,
        hooks=api.hooks,
        budget=None if redis_client is None else Budget(redis_client, vendor, account, access.limits),
        breaker=None
        if redis_client is None
        else Breaker(
            redis_client, vendor, account, failure_threshold=breaker_failures, open_interval_s=breaker_open_s
        ),
    )


def reader_for(source: Source, client: VendorClient, priority: Priority = Priority.BACKFILL) -> Reader:
    access = source.api.access
    assert access is not None, "target() checks it"
    return Reader(client, account=access.account, page_size=access.page_size, priority=priority)


def run(
    engine: Engine,
    deps: Deps,
    source_name: str,
    stream_name: str,
    *,
    slot: str,
    triggered_by: str,
    full: bool = False,
    progress: Callable[[Counts, int], None] | None = None,
) -> RunResult:
    """One run of a stream (see the module docstring); `progress(counts, pages)` after each page."""
    source, stream = target(deps.sources, source_name, stream_name)
    structlog.contextvars.bind_contextvars(source=source_name, stream=stream_name)
    token = uuid.uuid4().hex
    claimed = _claim(engine, deps, source, stream_name, token, slot, triggered_by, full)
    if isinstance(claimed, RunResult):
        log.info("sync.skipped", reason=str(claimed.status), slot=slot)
        metrics.SYNC_RUNS.labels(source.name, stream_name, str(claimed.status)).inc()
        return claimed
    run_id, cursor = claimed
    result = RunResult(RunStatus.DONE, run_id, cursor=cursor)
    began = deps.monotonic()
    pages = None
    number = 0
    try:
        pages = stream.walk(reader_for(source, deps.client_for(source)), cursor)
        for page in pages:
            _checkpoint(engine, deps, source, stream_name, run_id, token, page, result)
            number += 1
            if progress is not None:
                progress(result.counts, number)
            if deps.monotonic() - began > deps.slice_s or deps.stopping():
                result.status, result.resume_at = RunStatus.PARTIAL, deps.clock()
                break
    except LeaseLost:
        log.warning("sync.lease_lost", run_id=run_id)
        result.status = RunStatus.ABANDONED
        return result
    except Exception as exc:
        _judge_failure(engine, deps, source, stream_name, exc, result)
    except KeyboardInterrupt:  # a foreground run stopped by its operator: the checkpoint stays
        result.status, result.error = RunStatus.FAILED, "interrupted"
        _finish(engine, deps, source.name, stream_name, run_id, token, result)
        raise
    finally:
        close = getattr(pages, "close", None)  # a generator: let it run its cleanup now
        if close is not None:
            close()
    _finish(engine, deps, source.name, stream_name, run_id, token, result)
    metrics.SYNC_RUNS.labels(source.name, stream_name, str(result.status)).inc()
    log.info(
        "sync.run",
        run_id=run_id,
        status=str(result.status),
        pages=number,
        **result.counts.values(),
        **({"error": result.error} if result.error else {}),
    )
    return result


def _claim(
    engine: Engine,
    deps: Deps,
    source: Source,
    stream: str,
    token: str,
    slot: str,
    triggered_by: str,
    full: bool,
) -> RunResult | tuple[str, Cursor | None]:
    """Lease the stream and open (or take over) the slot's run; a RunResult when it must not run."""
    with engine.begin() as conn:
        now = deps.clock()
        insert = dialect_insert(conn.dialect.name)(sync_cursors)
        conn.execute(insert.values(source=source.name, stream=stream, failures=0).on_conflict_do_nothing())
        if _flagged(conn, source.name):
            return RunResult(RunStatus.FLAGGED)
        held = conn.execute(
            update(sync_cursors)
            .where(
                sync_cursors.c.source == source.name,
                sync_cursors.c.stream == stream,
                or_(sync_cursors.c.lease_token.is_(None), sync_cursors.c.lease_until < now),
            )
            .values(lease_token=token, lease_until=now + timedelta(seconds=deps.lease_s), queued_at=None)
            .returning(sync_cursors.c.cursor, sync_cursors.c.run_id)
        ).first()
        if held is None:
            return RunResult(RunStatus.BUSY)
        if held.run_id is not None:
            _abandon(conn, held.run_id, now)
        cursor = held.cursor
        existing = conn.execute(
            select(sync_runs.c.id, sync_runs.c.status).where(
                sync_runs.c.source == source.name, sync_runs.c.stream == stream, sync_runs.c.slot == slot
            )
        ).first()
        if existing is not None and existing.status != RunStatus.ABANDONED:
            conn.execute(
                update(sync_cursors).where(_ours(source.name, stream, token)).values(lease_token=None)
            )
            return RunResult(RunStatus.DUPLICATE, existing.id)
        if existing is not None:  # a redelivery of a run whose worker died: go on from its checkpoint
            run_id = existing.id
            conn.execute(
                update(sync_runs)
                .where(sync_runs.c.id == run_id)
                .values(status=RunStatus.RUNNING, finished_at=None, error=None)
            )
        else:
            run_id = str(uuid.uuid4())
            conn.execute(
                sync_runs.insert().values(
                    id=run_id,
                    source=source.name,
                    stream=stream,
                    slot=slot,
                    triggered_by=triggered_by,
                    full_sync=full,
                    status=RunStatus.RUNNING,
                    started_at=now,
                    cursor_before=cursor,
                    **Counts().values(),
                    pages=0,
                )
            )
            if full:
                cursor = None
        conn.execute(
            update(sync_cursors).where(_ours(source.name, stream, token)).values(run_id=run_id, cursor=cursor)
        )
    log.info("sync.started", run_id=run_id, slot=slot, triggered_by=triggered_by, full=full)
    return run_id, cursor


def _ours(source: str, stream: str, token: str) -> Any:
    c = sync_cursors.c
    return and_(c.source == source, c.stream == stream, c.lease_token == token)


def _flagged(conn: Connection, source: str) -> bool:
    flag = conn.execute(select(source_flags.c.needs_reauth).where(source_flags.c.source == source)).first()
    return bool(flag and flag.needs_reauth)


def _abandon(conn: Connection, run_id: str, now: datetime) -> None:
    conn.execute(
        update(sync_runs)
        .where(sync_runs.c.id == run_id, sync_runs.c.status == RunStatus.RUNNING)
        .values(
            status=RunStatus.ABANDONED, finished_at=now, error="its worker stopped while holding the lease"
        )
    )


def _checkpoint(
    engine: Engine,
    deps: Deps,
    source: Source,
    stream: str,
    run_id: str,
    token: str,
    page: Page,
    result: RunResult,
) -> None:
    """One page, one transaction: fence, records, quarantine, counts, cursor, lease."""
    with engine.begin() as conn:
        now = deps.clock()
        moved = conn.execute(
            update(sync_cursors)
            .where(_ours(source.name, stream, token), sync_cursors.c.lease_until >= now)
            .values(cursor=page.cursor, checkpoint_at=now, lease_until=now + timedelta(seconds=deps.lease_s))
        ).rowcount
        if moved != 1:
            raise LeaseLost(run_id)
        counts = store_page(
            conn,
            vendor=source.connector,
            source=source.name,
            stream=stream,
            run_id=run_id,
            page=page,
            now=now,
        )
        conn.execute(
            update(sync_runs)
            .where(sync_runs.c.id == run_id)
            .values(
                pages=sync_runs.c.pages + 1,
                cursor_after=page.cursor,
                **{name: sync_runs.c[name] + value for name, value in counts.values().items()},
            )
        )
    result.counts.add(counts)
    result.cursor = page.cursor
    for outcome in ("applied", "stale", "quarantined", "changed", "covered"):
        if amount := getattr(counts, outcome):
            metrics.SYNC_RECORDS.labels(source.name, stream, outcome).inc(amount)


def _judge_failure(
    engine: Engine, deps: Deps, source: Source, stream: str, exc: Exception, result: RunResult
) -> None:
    """How a run that raised ends: waiting for a retry the database schedules, or failed."""
    verdict = classify(exc)
    result.error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
    now = deps.clock()
    if verdict is Verdict.RETRY:
        with engine.connect() as conn:
            failures = conn.execute(
                select(sync_cursors.c.failures).where(
                    sync_cursors.c.source == source.name, sync_cursors.c.stream == stream
                )
            ).scalar_one()
        hint = exc.retry_after_s if isinstance(exc, TransientError) else None
        wait_s = hint if hint is not None else deps.retry.backoff_s(failures + 1, deps.rand)
        result.status, result.resume_at = RunStatus.WAITING, now + timedelta(seconds=max(wait_s, 0.0))
        log.warning("sync.waiting", error=result.error, wait_s=round(wait_s, 3))
        return
    result.status = RunStatus.FAILED
    if verdict is Verdict.REAUTHORIZE:
        with engine.begin() as conn:
            flags.flag(conn, source.name, result.error, now)
    log.error("sync.failed", error=result.error, verdict=str(verdict))


def _finish(
    engine: Engine, deps: Deps, source: str, stream: str, run_id: str, token: str, result: RunResult
) -> None:
    """Close the run and free the stream, fenced on our lease (a run that lost it writes nothing)."""
    with engine.begin() as conn:
        now = deps.clock()
        started = conn.execute(select(sync_runs.c.started_at).where(sync_runs.c.id == run_id)).scalar_one()
        ok = result.status in (RunStatus.DONE, RunStatus.PARTIAL)
        values: dict[str, Any] = {
            "lease_token": None,
            "lease_until": None,
            "resume_at": result.resume_at,
            "failures": 0 if ok else sync_cursors.c.failures + 1,
            "last_error": result.error,
        }
        if result.status is RunStatus.DONE:
            values["fresh_at"] = started
        if (
            conn.execute(update(sync_cursors).where(_ours(source, stream, token)).values(**values)).rowcount
            != 1
        ):
            log.warning("sync.lease_lost", run_id=run_id)
            return
        conn.execute(
            update(sync_runs)
            .where(sync_runs.c.id == run_id)
            .values(status=result.status, finished_at=now, error=result.error)
        )


def sweep(engine: Engine, *, now: datetime, requeue_s: float, send: Callable[[str, str, str], None]) -> int:
    """Send a run for every stream due to go on: one that stopped early (`resume_at` reached), and
    one whose worker died holding the lease (its own slot, so the redelivery takes its run over).
    A stream already sent and not yet started is sent again only after `requeue_s`."""
    c, r = sync_cursors.c, sync_runs.c
    lapsed = and_(c.lease_token.is_not(None), c.lease_until < now)
    free = or_(c.lease_token.is_(None), c.lease_until < now)
    due = select(c.source, c.stream, c.resume_at, r.slot, r.status, lapsed.label("lapsed")).outerjoin(
        sync_runs, r.id == c.run_id
    )
    due = due.where(
        or_(and_(c.resume_at <= now, free), lapsed),
        or_(c.queued_at.is_(None), c.queued_at < now - timedelta(seconds=requeue_s)),
    )
    sent = []
    with engine.begin() as conn:
        for row in conn.execute(due).all():
            slot = row.slot if row.lapsed and row.slot else f"resume-{(row.resume_at or now).isoformat()}"
            conn.execute(
                update(sync_cursors)
                .where(sync_cursors.c.source == row.source, sync_cursors.c.stream == row.stream)
                .values(queued_at=now)
            )
            sent.append((row.source, row.stream, slot))
    for source, stream, slot in sent:  # after the commit: a lost message is sent again later
        send(source, stream, slot)
    return len(sent)


def read_one(deps: Deps, source_name: str, stream_name: str, object_id: str) -> tuple[Source, Page]:
    """One object read through its stream's `fetch`, at real-time priority (ahead of backfills)."""
    source, stream = target(deps.sources, source_name, stream_name)
    if stream.fetch is None:
        raise ConfigError(f"{source.connector} {stream_name} has no single-object fetch")
    return source, stream.fetch(reader_for(source, deps.client_for(source), Priority.REALTIME), object_id)


def fetch_run_id() -> str:
    return f"{FETCH_RUN_PREFIX}{uuid.uuid4().hex[:24]}"


def fetch_one(engine: Engine, deps: Deps, source_name: str, stream_name: str, object_id: str) -> Counts:
    """Read one object now and store it as a sync would, as the API's whole copy (a rule's
    `sync.trigger` with an id). It moves no cursor and needs no lease."""
    source, page = read_one(deps, source_name, stream_name, object_id)
    with engine.begin() as conn:
        return store_page(
            conn,
            vendor=source.connector,
            source=source.name,
            stream=stream_name,
            run_id=fetch_run_id(),
            page=page,
            now=deps.clock(),
            whole=True,
        )
