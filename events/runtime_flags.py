"""Runtime flags: turn a rule, or every rule for a source, on or off without a deploy.

A rule flag overrides the rule file's `enabled`; a source flag set to off stops every rule from
matching that source's events (the events themselves are still stored and processed). No flag:
the rule file decides, and a source is on. Workers read the flags through `FlagCache`, so a change
takes effect within its `ttl_s`. Every change is audited by the caller's transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, select

from events import audit
from events.db import dialect_insert, row_dict, runtime_flags, utcnow

KINDS = ("rule", "source")


@dataclass(frozen=True)
class Flags:
    rules: Mapping[str, bool] = field(default_factory=dict)
    sources: Mapping[str, bool] = field(default_factory=dict)

    def rule_on(self, name: str, default: bool) -> bool:
        return self.rules.get(name, default)

    def source_on(self, name: str) -> bool:
        return self.sources.get(name, True)


def read(conn: Connection) -> Flags:
    by_kind: dict[str, dict[str, bool]] = {kind: {} for kind in KINDS}
    for row in conn.execute(select(runtime_flags.c.kind, runtime_flags.c.name, runtime_flags.c.enabled)):
        by_kind.setdefault(row.kind, {})[row.name] = bool(row.enabled)
    return Flags(rules=by_kind["rule"], sources=by_kind["source"])


def listing(conn: Connection) -> list[dict[str, Any]]:
    """Every flag set, by kind and name."""
    stmt = select(runtime_flags).order_by(runtime_flags.c.kind, runtime_flags.c.name)
    return [row_dict(r) for r in conn.execute(stmt)]


def put(conn: Connection, kind: str, name: str, enabled: bool | None, actor: str) -> None:
    """Set a flag (None: clear it, the rule file or the default decides again), audited."""
    if kind not in KINDS:
        raise ValueError(f"kind is one of {', '.join(KINDS)}")
    table = runtime_flags
    if enabled is None:
        conn.execute(delete(table).where(table.c.kind == kind, table.c.name == name))
    else:
        values = {"enabled": enabled, "updated_at": utcnow(), "updated_by": actor[:100]}
        stmt = dialect_insert(conn.dialect.name)(table).values(kind=kind, name=name, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["kind", "name"], set_=values))
    audit.record(conn, actor, "flags.set", f"{kind}:{name}", {"enabled": enabled})


class FlagCache:
    """The flags, read again at most every `ttl_s` seconds (the clock is injected)."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._flags = Flags()
        self._read_at: float | None = None

    def get(self, conn: Connection) -> Flags:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self.ttl_s:
            self._flags, self._read_at = read(conn), now
        return self._flags
