"""Action runs for operators: what each rule did, and the actions that became dead letters.

An action's dead letter is its `action_runs` row in state `dead` (error class, message, traceback and
every try in `history`). A replay moves it back to `pending` with a fresh attempt budget and keeps
its idempotency key; replaying one that is no longer dead does nothing.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, false, func, or_, select, update

from events.db import ACTION_UNFINISHED, ActionState, LetterState, action_runs, event_dict, events, row_dict
from events.dlq import Filters

RUNS = action_runs.c
REPLAY_GRACE_S = 30.0  # a replayed run is relayed if its publish is lost


def counts_by_rule(conn: Connection) -> dict[str, dict[str, int]]:
    """Per rule: matched, throttled and shadow count events; fired, failed and pending count actions."""
    counts: dict[str, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(("matched", "throttled", "shadow", "fired", "failed", "pending"), 0)
    )
    by_state = select(RUNS.rule, RUNS.state, func.count(), func.count(RUNS.event_id.distinct())).group_by(
        RUNS.rule, RUNS.state
    )
    for rule, state, runs, events_seen in conn.execute(by_state):
        row = counts[rule]
        if state == ActionState.SHADOW:
            row["shadow"] += events_seen
        elif state in (ActionState.THROTTLED, ActionState.DEBOUNCED):
            row["throttled"] += events_seen
        elif state == ActionState.DONE:
            row["fired"] += runs
        elif state == ActionState.DEAD:
            row["failed"] += runs
        elif state in ACTION_UNFINISHED:
            row["pending"] += runs
    live = (
        select(RUNS.rule, func.count(RUNS.event_id.distinct()))
        .where(RUNS.state != ActionState.SHADOW)
        .group_by(RUNS.rule)
    )
    for rule, matched in conn.execute(live):
        counts[rule]["matched"] = matched
    return dict(counts)


def where(filters: Filters) -> Any:
    """The dead-letter filters on action runs: `task` is the action type, times are when it died."""
    clauses = [
        column == value
        for column, value in (
            (RUNS.source, filters.source),
            (RUNS.vendor, filters.vendor),
            (RUNS.action_type, filters.task),
            (RUNS.error_class, filters.error_class),
        )
        if value is not None
    ]
    if filters.state == LetterState.DEAD:
        clauses.append(RUNS.state == ActionState.DEAD)
    elif filters.state == LetterState.REPLAYED:
        clauses.append(and_(RUNS.replays > 0, RUNS.state != ActionState.DEAD))
    else:
        clauses.append(or_(RUNS.state == ActionState.DEAD, RUNS.replays > 0))
    if filters.since is not None:
        clauses.append(RUNS.finished_at >= filters.since)
    if filters.until is not None:
        clauses.append(RUNS.finished_at < filters.until)
    if filters.text:
        pattern = f"%{filters.text.lower()}%"
        clauses.append(
            or_(
                func.lower(RUNS.last_error).like(pattern),
                func.lower(RUNS.rule).like(pattern),
                func.lower(RUNS.traceback).like(pattern),
                RUNS.id == filters.text,
                RUNS.event_id == filters.text,
            )
        )
    return and_(*clauses)


def _letter(row: Any) -> dict[str, Any]:
    data = row_dict(row, exclude=("lease_token", "traceback", "history", "params", "result"))
    return {**data, "died_at": data.pop("finished_at"), "error_message": data.pop("last_error")}


def find(conn: Connection, filters: Filters, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    stmt = select(action_runs).where(where(filters)).order_by(RUNS.finished_at.desc(), RUNS.id)
    return [_letter(r) for r in conn.execute(stmt.limit(limit).offset(offset))]


def show(conn: Connection, run_id: str) -> dict[str, Any] | None:
    """One run in full (its tries, error, traceback, parameters without secrets) and its event."""
    row = conn.execute(select(action_runs).where(RUNS.id == run_id)).first()
    if row is None:
        return None
    event = conn.execute(select(events).where(events.c.id == row.event_id)).first()
    return {**row_dict(row, exclude=("lease_token",)), "event": None if event is None else event_dict(event)}


def plan(
    conn: Connection, filters: Filters | None = None, ids: tuple[str, ...] = ()
) -> list[tuple[str, str]]:
    """(run id, "actions") of the dead actions a replay would take, oldest first."""
    stmt = select(RUNS.id).where(RUNS.state == ActionState.DEAD)
    if ids:
        stmt = stmt.where(RUNS.id.in_(list(ids)))
    if filters is not None:
        stmt = stmt.where(where(filters)) if filters.state != LetterState.REPLAYED else stmt.where(false())
    return [(r.id, "actions") for r in conn.execute(stmt.order_by(RUNS.finished_at))]


def replay_one(conn: Connection, run_id: str, now: datetime) -> bool:
    """Move one dead action back to pending with a fresh budget; False when it is not dead."""
    moved = conn.execute(
        update(action_runs)
        .where(RUNS.id == run_id, RUNS.state == ActionState.DEAD)
        .values(
            state=ActionState.PENDING,
            attempts_before_replay=RUNS.attempts,
            throttled_tries=0,
            available_at=now,
            relay_at=now + timedelta(seconds=REPLAY_GRACE_S),
            lease_token=None,
            finished_at=None,
            replays=RUNS.replays + 1,
            replayed_at=now,
        )
    ).rowcount
    return bool(moved)
