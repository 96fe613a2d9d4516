"""From a series of evaluations to alerts: one breach, then one recovery, never a storm.

An evaluation is `True` (bad), `False` (good) or `None` (cannot tell: too little data). A breach is
raised after `breach_after` bad evaluations in a row while healthy; a recovery after
`recover_after` good ones in a row while breached. `None` is no evidence either way: it neither
extends nor breaks a streak, so a quiet night neither raises nor clears an alert.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    BREACHED = "breached"


class Transition(StrEnum):
    BREACH = "breach"
    RECOVERY = "recovery"


@dataclass(frozen=True)
class Debounce:
    breach_after: int = 3
    recover_after: int = 3

    def __post_init__(self) -> None:
        if self.breach_after < 1 or self.recover_after < 1:
            raise ValueError("breach_after and recover_after must be at least 1")


@dataclass(frozen=True)
class AlertState:
    status: Status = Status.OK
    streak: int = 0  # evaluations in a row that disagree with `status`
    since: datetime | None = None  # when `status` last changed


def step(
    state: AlertState, bad: bool | None, policy: Debounce, now: datetime
) -> tuple[AlertState, Transition | None]:
    """Feed one evaluation; the new state and the transition it causes, if any."""
    if bad is None:
        return state, None
    disagrees = bad if state.status is Status.OK else not bad
    if not disagrees:
        return replace(state, streak=0), None
    streak = state.streak + 1
    needed = policy.breach_after if state.status is Status.OK else policy.recover_after
    if streak < needed:
        return replace(state, streak=streak), None
    if state.status is Status.OK:
        return AlertState(Status.BREACHED, 0, now), Transition.BREACH
    return AlertState(Status.OK, 0, now), Transition.RECOVERY
