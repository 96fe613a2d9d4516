"""Leases with fencing tokens, and what a failure leads to: shared by events and action runs.

A worker claims rows in one UPDATE … RETURNING that sets a fresh token, counts the attempt and pushes
`available_at` (and `relay_at`) to the lease's end; every later write is fenced on that token and the
running state, so a worker whose lease expired and was taken over writes nothing. A failure is
classified once: retried at a time the remote named or by the policy's backoff, or dead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, Update, and_, bindparam, case, or_, update

from schemas.errors import TransientError
from schemas.retry import RetryPolicy, Verdict, classify

ERROR_CHARS = 4000  # of an error message kept in a row


def claim_statement(table: Table, *, ready: Sequence[str], waiting: Sequence[str], running: str) -> Update:
    """Take the lease on the rows among `b_ids` that are `ready`, or `waiting` and due (`b_now`).

    Parameters: b_ids, b_now, b_token, b_expires. Built once per table: building Core statements
    per call costs more CPU than running them."""
    when = table.c.available_at.type
    due = and_(table.c.state.in_(list(waiting)), table.c.available_at <= bindparam("b_now", type_=when))
    claimable = or_(table.c.state.in_(list(ready)), due) if ready else due
    return (
        update(table)
        .where(table.c.id.in_(bindparam("b_ids", expanding=True)))
        .where(claimable)
        .values(
            state=running,
            lease_token=bindparam("b_token"),
            attempts=table.c.attempts + 1,
            available_at=bindparam("b_expires", type_=when),
            relay_at=bindparam("b_expires", type_=when),
        )
        .returning(*table.c)
    )


def hand_back_statement(table: Table, *, fresh: str, waiting: str, running: str) -> Update:
    """Give back rows claimed under `b_token` and not worked on (a worker stopping): the lease
    released, the attempt uncounted, due and relayable at `b_now`; `fresh` for a first attempt, else
    `waiting`. Parameters: b_ids, b_token, b_now. Returns the ids given back."""
    when = table.c.available_at.type
    return (
        update(table)
        .where(
            table.c.id.in_(bindparam("b_ids", expanding=True)),
            table.c.lease_token == bindparam("b_token"),
            table.c.state == running,
        )
        .values(
            state=case((table.c.attempts > 1, waiting), else_=fresh),
            lease_token=None,
            attempts=table.c.attempts - 1,
            available_at=bindparam("b_now", type_=when),
            relay_at=bindparam("b_now", type_=when),
        )
        .returning(table.c.id)
    )


def claim_params(ids: Sequence[str], token: str, now: datetime, lease_s: float) -> dict[str, Any]:
    return {"b_ids": list(ids), "b_now": now, "b_token": token, "b_expires": now + timedelta(seconds=lease_s)}


def fence(conn: Connection, table: Table, row_id: str, token: str, running: str, **values: Any) -> bool:
    """Update the row only while our lease holds (the row lock also fences late claimers)."""
    result = conn.execute(
        update(table)
        .where(table.c.id == row_id, table.c.lease_token == token, table.c.state == running)
        .values(lease_token=None, **values)
    )
    return result.rowcount == 1


@dataclass(frozen=True)
class Next:
    """What a failure leads to: a retry at `due`, or (due None) a dead letter."""

    verdict: Verdict
    due: datetime | None
    message: str


def after_failure(
    error: BaseException, policy: RetryPolicy, tried: int, now: datetime, rand: Callable[[], float]
) -> Next:
    """Retry a transient failure while attempts remain (`tried` of them used), at the time the remote
    asked for or after the policy's backoff; anything else, or the last attempt, is dead."""
    verdict = classify(error)
    message = f"{type(error).__name__}: {error}"[:ERROR_CHARS]
    if verdict is Verdict.RETRY and tried < policy.max_attempts:
        hint = error.retry_after_s if isinstance(error, TransientError) else None
        wait_s = hint if hint is not None else policy.backoff_s(tried, rand)
        return Next(verdict, now + timedelta(seconds=wait_s), message)
    return Next(verdict, None, message)
