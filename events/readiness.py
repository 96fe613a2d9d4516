"""Readiness: can this process do its work right now?

Three checks, each answering a short status, never a host, a URL or an error message (those go to
the log, where operators read them):

    database     ok | unreachable | timeout
    migrations   ok | not_migrated | behind | newer | unknown (the database could not be asked)
    broker       ok | unreachable | timeout

Ready means the database answers, its schema is the one this code ships (or `newer`: a release
migrated it and is rolling out; the old processes keep serving meanwhile) and the broker answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import structlog
from sqlalchemy import Engine

from events.migrate import SchemaState, schema_state

log = structlog.get_logger()

OK = "ok"
SCHEMA_READY = (SchemaState.CURRENT, SchemaState.NEWER)


def check_database(engine: Engine) -> dict[str, str]:
    try:
        with engine.connect() as conn:
            state = schema_state(conn)
    except Exception as exc:
        log.warning("readiness.database_unreachable", error=repr(exc))
        return {"database": "unreachable", "migrations": "unknown"}
    if state not in SCHEMA_READY:
        log.error("readiness.not_migrated", state=str(state), detail="run `hookyard migrate`")
    return {"database": OK, "migrations": str(state)}


def check_broker(probe: Callable[[], None]) -> dict[str, str]:
    try:
        probe()
    except Exception as exc:
        log.warning("readiness.broker_unreachable", error=repr(exc))
        return {"broker": "unreachable"}
    return {"broker": OK}


def is_ready(checks: dict[str, str]) -> bool:
    return (
        checks.get("database") == OK
        and checks.get("broker") == OK
        and checks.get("migrations") in {str(s) for s in SCHEMA_READY}
    )


class Readiness:
    """Runs the checks concurrently on threads of their own (a hung check never takes a thread the
    ingress needs) and gives up on each after `timeout_s`."""

    def __init__(self, engine: Engine, probe_broker: Callable[[], None], timeout_s: float) -> None:
        self._engine = engine
        self._probe_broker = probe_broker
        self._timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readiness")

    async def check(self) -> dict[str, str]:
        database, broker = await asyncio.gather(
            self._run(lambda: check_database(self._engine), {"database": "timeout", "migrations": "unknown"}),
            self._run(lambda: check_broker(self._probe_broker), {"broker": "timeout"}),
        )
        return {**database, **broker}

    async def _run(self, check: Callable[[], dict[str, str]], on_timeout: dict[str, str]) -> dict[str, str]:
        future = asyncio.get_running_loop().run_in_executor(self._pool, check)
        try:
            return await asyncio.wait_for(future, self._timeout_s)
        except TimeoutError:
            log.warning("readiness.timeout", checks=sorted(on_timeout), timeout_s=self._timeout_s)
            return on_timeout

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
