"""Run recorded actions, once in effect.

claim the runs of a message (lease + fencing token, the events' pattern in workers/leases.py) → for
each in turn, take its rule's action as loaded now (secrets come from the rule, the rendered
parameters from the row) → one try → record the outcome. The runs of one message (up to 10) are
claimed in one statement with a lease of `lease_s` for each of them (they run one after the other),
and an exchange never lasts longer than a quarter of `lease_s` per timeout: a run's lease cannot
run out while its worker is still on it. A worker that dies leaves the rest to the relay once that
lease has expired.

Exactly once, and the one window that cannot be closed. A redelivered message, a relay republish or
a replay finds the run done (or leased) and does nothing. A worker killed before acting leaves a
lease that expires: the run is tried again, and nothing had happened. A worker killed after the
outcome was recorded leaves a done run. Between the target's answer and the commit of the `done`
write a kill loses the record of what happened, and the run is tried again when its lease expires:
for `http.post` the receiver sees the same `webhook-id` and can deduplicate, but Slack does not
deduplicate, so the message is posted twice. That window is one UPDATE and its commit, on a
connection already checked out (no pool ping, no other statement): nothing else runs between the
answer and the write. `event.tag` has no window: its effect commits with the `done`.

A failure goes through the rule's RetryPolicy: retried at the time the remote asked for
(Retry-After) or after backoff, the wait kept in `available_at` (the relay publishes it when due);
permanent failures and exhausted attempts become dead letters (`hookyard dlq list --kind actions`,
replayable). A 429 uses up no attempt: the vendor is up and said when (up to THROTTLED_MAX_WAITS).
"""

from __future__ import annotations

import random
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import httpx
import structlog
from pydantic import BaseModel
from sqlalchemy import Connection, Engine, select

from connectors import registry
from events.db import ActionState, action_runs, events, utcnow
from events.queue import publish_actions, trigger_sync
from rules.actions import SECRET, marked
from rules.constants import ACTION_RETRY
from rules.context import context
from rules.metrics import FAILED, FIRED, RULE_MATCHES
from rules.ruleset import Action, Rule, RuleSet
from schemas.envelope import Envelope
from schemas.errors import PermanentError, Throttled
from schemas.retry import RetryPolicy
from workers import leases
from workers.executors import Call, Effect, execute
from workers.forward import event_body

log = structlog.get_logger()

THROTTLED_MAX_WAITS = 200  # 429s that use up no attempt; past this they count like other failures
HISTORY_MAX = 50  # tries kept in a run's history (the newest)
TRACEBACK_CHARS = 16000


class Outcome(StrEnum):
    DONE = "done"
    SKIPPED = "skipped"  # not claimable: done, dead, not due, or leased by another worker
    LOST_LEASE = "lost_lease"
    RETRY = "retry"
    DEAD = "dead"
    HANDED_BACK = "handed_back"  # claimed, not begun: the worker is stopping (workers.stopping)


@dataclass(frozen=True)
class ActionContext:
    rules: Callable[[], RuleSet]
    lease_s: float
    http: httpx.Client
    trigger_sync: Callable[[str, str, str | None, str], None] = trigger_sync
    rand: Callable[[], float] = random.random
    clock: Callable[[], datetime] = utcnow
    fault_delay_before_s: float = 0.0
    fault_delay_after_s: float = 0.0
    stopping: Callable[[], bool] = lambda: False  # the worker is stopping: hand back what is not begun


_CLAIM = leases.claim_statement(
    action_runs,
    ready=(),
    waiting=(ActionState.PENDING, ActionState.RETRY, ActionState.RUNNING),
    running=ActionState.RUNNING,
)
_HAND_BACK = leases.hand_back_statement(
    action_runs, fresh=ActionState.PENDING, waiting=ActionState.RETRY, running=ActionState.RUNNING
)


def run_many(engine: Engine, run_ids: Sequence[str], ctx: ActionContext) -> dict[str, Outcome]:
    """Claim the runs together, then run each in turn, on one connection held throughout (no pool
    checkout between a target's answer and the write that records it)."""
    token = uuid.uuid4().hex
    outcomes: dict[str, Outcome] = {}
    with engine.connect() as conn:
        with conn.begin():
            lease_s = ctx.lease_s * len(run_ids)  # each may take up to lease_s, one after the other
            claim = leases.claim_params(run_ids, token, ctx.clock(), lease_s)
            claimed = {row.id: row for row in conn.execute(_CLAIM, claim)}
        unbegun = []
        for run_id in run_ids:
            row = claimed.get(run_id)
            if row is None:
                log.info("action.skipped", run_id=run_id)
                outcomes[run_id] = Outcome.SKIPPED
            elif ctx.stopping():
                unbegun.append(run_id)
            else:
                outcomes[run_id] = _run(conn, row, token, ctx)
        if unbegun:
            with conn.begin():
                params = {"b_ids": unbegun, "b_token": token, "b_now": ctx.clock()}
                back = {r.id for r in conn.execute(_HAND_BACK, params)}
            outcomes |= {
                run_id: Outcome.HANDED_BACK if run_id in back else Outcome.LOST_LEASE for run_id in unbegun
            }
            log.info("action.handed_back", runs=len(back))
            _publish_back(back)
    return outcomes


def _publish_back(run_ids: set[str]) -> None:
    """Runs given back go to the actions queue at once (if that fails, the relay sends them)."""
    try:
        publish_actions(run_ids)
    except Exception as exc:
        log.warning("action.hand_back_unpublished", runs=len(run_ids), error=repr(exc))


def _run(conn: Connection, row: Any, token: str, ctx: ActionContext) -> Outcome:
    started = ctx.clock()
    structlog.contextvars.bind_contextvars(run_id=row.id, event_id=row.event_id, rule=row.rule)
    if ctx.fault_delay_before_s:
        time.sleep(ctx.fault_delay_before_s)
    rule = ctx.rules().get(row.rule)
    policy = ACTION_RETRY if rule is None else rule.retry
    try:
        action = _action(rule, row)
        assert rule is not None  # _action raises without it
        params = _params(conn, row, rule, action)
        effect = execute(row.action_type, params, _call(conn, row, ctx))
    except Exception as exc:
        return _fail(conn, row, token, exc, policy, started, ctx)
    return _done(conn, row, token, effect, started, ctx)


def _done(
    conn: Connection, row: Any, token: str, effect: Effect, started: datetime, ctx: ActionContext
) -> Outcome:
    now = ctx.clock()
    history = _history(row, started, now, Outcome.DONE)
    with conn.begin():  # the one write between the target's answer and the record of it
        if not leases.fence(
            conn,
            action_runs,
            row.id,
            token,
            ActionState.RUNNING,
            state=ActionState.DONE,
            finished_at=now,
            result=effect.result,
            history=history,
            error_class=None,
            last_error=None,
        ):
            conn.rollback()
            log.warning("action.lease_lost", run_id=row.id)
            return Outcome.LOST_LEASE
        if effect.apply is not None:
            effect.apply(conn)
    RULE_MATCHES.labels(row.rule, FIRED).inc()
    log.info("action.done", action_type=row.action_type, attempt=row.attempts, result=effect.result)
    if ctx.fault_delay_after_s:
        time.sleep(ctx.fault_delay_after_s)
    return Outcome.DONE


def _fail(
    conn: Connection,
    row: Any,
    token: str,
    error: BaseException,
    policy: RetryPolicy,
    started: datetime,
    ctx: ActionContext,
) -> Outcome:
    now = ctx.clock()
    throttled = isinstance(error, Throttled) and row.throttled_tries < THROTTLED_MAX_WAITS
    tried = row.attempts - row.attempts_before_replay - row.throttled_tries  # a replay starts afresh
    step = leases.after_failure(error, policy, 0 if throttled else tried, now, ctx.rand)
    outcome = Outcome.RETRY if step.due is not None else Outcome.DEAD
    values: dict[str, Any] = {
        "history": _history(row, started, now, outcome, step.message),
        "error_class": type(error).__name__,
        "last_error": step.message,
    }
    if step.due is not None:
        values.update(
            state=ActionState.RETRY,
            available_at=step.due,
            relay_at=step.due,
            throttled_tries=row.throttled_tries + throttled,
        )
    else:
        values.update(
            state=ActionState.DEAD,
            finished_at=now,
            traceback="".join(traceback.format_exception(error))[-TRACEBACK_CHARS:],
        )
    with conn.begin():
        if not leases.fence(conn, action_runs, row.id, token, ActionState.RUNNING, **values):
            conn.rollback()
            return Outcome.LOST_LEASE
    if outcome is Outcome.DEAD:
        RULE_MATCHES.labels(row.rule, FAILED).inc()
    log.warning(
        "action.failed",
        action_type=row.action_type,
        attempt=row.attempts,
        error=step.message,
        outcome=str(outcome),
        retry_at=step.due.isoformat() if step.due else None,
    )
    return outcome


def history_entry(
    number: int, started: datetime, now: datetime, outcome: Outcome, error: str | None = None
) -> dict[str, Any]:
    """One try as a run's `history` keeps it."""
    return {
        "number": number,
        "started_at": started.isoformat(),
        "duration_ms": int((now - started).total_seconds() * 1000),
        "outcome": str(outcome),
        "error": error[:500] if error else None,
    }


def _history(
    row: Any, started: datetime, now: datetime, outcome: Outcome, error: str | None = None
) -> list[Any]:
    entry = history_entry(row.attempts, started, now, outcome, error)
    return [*list(row.history or ())[-(HISTORY_MAX - 1) :], entry]


def _action(rule: Rule | None, row: Any) -> Action:
    """The run's action as its rule is loaded now (it carries the secrets)."""
    if rule is None:
        raise PermanentError(f"rule {row.rule!r} is not loaded any more: restore it, then replay this action")
    index: int = row.action_index
    if index >= len(rule.actions) or rule.actions[index].type != row.action_type:
        raise PermanentError(f"rule {row.rule!r} has no {row.action_type} action at {index} any more")
    return rule.actions[index]


def _params(conn: Connection, row: Any, rule: Rule, action: Action) -> BaseModel:
    """The rendered parameters with the rule's secrets; rendered again if that failed when it matched."""
    if row.params is None:
        envelope, items = _stored_event(conn, row.event_id)
        found = [m for m in rule.render(context(envelope, items)) if m.action.index == action.index]
        if not found or found[0].params is None:
            raise PermanentError(found[0].error if found else "the action did not render")
        return found[0].params
    secrets = {name: getattr(action.params, name) for name in marked(type(action.params), SECRET)}
    return type(action.params).model_validate({**row.params, **secrets})


def _stored_event(conn: Connection, event_id: str) -> tuple[Envelope, list[Any]]:
    with conn.begin():
        row = conn.execute(select(events).where(events.c.id == event_id)).first()
    if row is None or row.payload is None:
        raise PermanentError(f"event {event_id} is no longer stored")
    envelope = Envelope.from_row(row)
    return envelope, registry.get(row.vendor).normalize(envelope)


def _call(conn: Connection, row: Any, ctx: ActionContext) -> Call:
    return Call(
        key=row.idempotency_key,
        event_id=row.event_id,
        rule=row.rule,
        max_s=ctx.lease_s / 4,
        http=ctx.http,
        now=ctx.clock().timestamp(),
        event_body=lambda: event_body(*_stored_event(conn, row.event_id)),
        trigger_sync=ctx.trigger_sync,
    )
