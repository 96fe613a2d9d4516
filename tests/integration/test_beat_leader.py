"""Two real `hookyard beat` processes on one PostgreSQL: one sends; a paused leader that wakes sends
nothing; a killed leader's standby takes over; every entry is sent once per interval throughout."""

from __future__ import annotations

import os
import signal
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from events.db import leases
from tests.integration.harness import Process, Stack, wait_for

pytestmark = pytest.mark.integration

LEASE_S = "2"  # looks every 0.5 s; takes over within 2.5 s of a death
RELAY_S = 1.0  # the Stack's HOOKYARD_RELAY__INTERVAL_S


def lines(proc: Process, event: str) -> list[dict[str, Any]]:
    """The JSON log lines of `proc` named `event`."""
    found = []
    for raw in proc.log.read_bytes().splitlines():
        if raw.startswith(b"{"):
            line = orjson.loads(raw)
            if line.get("event") == event:
                found.append(line)
    return found


def start_beat(stack: Stack) -> Process:
    proc = stack.spawn("beat", "beat", HOOKYARD_BEAT__LEASE_S=LEASE_S)
    wait_for(lambda: lines(proc, "beat.leader_acquired") or b"Starting" in proc.log.read_bytes(), timeout=30)
    return proc


def sent(proc: Process, entry: str = "relay") -> list[dict[str, Any]]:
    return [line for line in lines(proc, "beat.sent") if line["entry"] == entry]


def signal_group(proc: Process, sig: int) -> None:
    os.killpg(proc.popen.pid, sig)


def test_two_beats_one_leader_pause_and_kill(pg_stack: Stack) -> None:
    """a leads, b stands by; a is SIGSTOPped: b takes over; a gets SIGCONT: it finds its lease lost
    and sends nothing more; b is SIGKILLed: a takes over with a new token. Across all of it the relay
    is sent once per interval (its recorded last runs are at least an interval apart)."""
    a = start_beat(pg_stack)
    wait_for(lambda: len(sent(a)) >= 2, timeout=30, what="a sending the relay")
    b = start_beat(pg_stack)
    wait_for(lambda: len(sent(a)) >= 4, timeout=30, what="a still sending")
    assert sent(b) == [] and lines(b, "beat.leader_acquired") == []

    signal_group(a, signal.SIGSTOP)
    try:
        wait_for(lambda: len(sent(b)) >= 2, timeout=30, what="b taking over from the paused a")
        sent_by_a = len(sent(a))
    finally:
        signal_group(a, signal.SIGCONT)
    wait_for(lambda: lines(a, "beat.leader_lost"), timeout=30, what="a noticing it lost the lease")
    wait_for(lambda: len(sent(b)) >= 5, timeout=30, what="b sending on")
    assert len(sent(a)) == sent_by_a  # woke up after its lease: sent nothing
    assert {line["token"] for line in sent(b)} == {2}

    b.kill(signal.SIGKILL)  # no release: a waits the lease out
    wait_for(lambda: any(line["token"] == 3 for line in sent(a)), timeout=30, what="a leading again")
    wait_for(lambda: len([line for line in sent(a) if line["token"] == 3]) >= 2, timeout=30)

    runs = sorted(line["last_run"] for proc in (a, b) for line in sent(proc))
    gaps = [later - earlier for earlier, later in zip(runs, runs[1:], strict=False)]
    assert min(gaps) >= RELAY_S, gaps
    by_token: dict[int, list[float]] = {}
    for proc in (a, b):
        for line in sent(proc):
            by_token.setdefault(line["token"], []).append(line["last_run"])
    assert sorted(by_token) == [1, 2, 3]
    assert max(by_token[1]) < min(by_token[2]) <= max(by_token[2]) < min(by_token[3])  # never two at once


def test_sigterm_gives_the_lease_up_for_the_standby(pg_stack: Stack) -> None:
    """With a 12 s lease (a look every 3 s), SIGTERM to the leader releases it: the standby leads
    before the lease the leader last renewed would have run out."""
    a = pg_stack.spawn("beat", "beat", HOOKYARD_BEAT__LEASE_S="12")
    wait_for(lambda: sent(a), timeout=30, what="a sending")
    b = pg_stack.spawn("beat", "beat", HOOKYARD_BEAT__LEASE_S="12")
    wait_for(lambda: b"Starting" in b.log.read_bytes(), timeout=30, what="b started")
    with pg_stack.engine.connect() as conn:
        expires = conn.execute(select(leases.c.expires_at)).scalar_one()
    a.kill(signal.SIGTERM)
    assert a.popen.returncode == 0 and lines(a, "beat.leader_released")
    wait_for(lambda: lines(b, "beat.leader_acquired"), timeout=60, what="b leading")
    with pg_stack.engine.connect() as conn:
        row = conn.execute(select(leases)).one()
    assert row.token == 2 and row.acquired_at < expires
    beat = pg_stack.cli("status")["beat"]  # who leads, for operators
    assert (beat["token"], beat["live"], beat["holder"]) == (
        2,
        True,
        lines(b, "beat.leader_acquired")[0]["holder"],
    )
