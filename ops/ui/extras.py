"""Pages whose data other parts of Hookyard are still building (vendor syncs, rule firings).

Each is one small function the dashboard calls: it answers None ("none yet") while its table does not
exist in this database, and otherwise the newest rows as plain dicts. Wire them to the real tables
(and their columns) as those land; the pages render whatever dicts come back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, MetaData, Table, inspect, select

from events.db import row_dict

SYNC_TABLE = "sync_state"  # one row per (source, resource): cursor, last run, lag, error
RULE_METRICS_TABLE = "rule_firings"  # rule firings by rule and outcome
LIMIT = 200


def _rows(conn: Connection, name: str) -> list[dict[str, Any]] | None:
    if not inspect(conn).has_table(name):
        return None
    table = Table(name, MetaData(), autoload_with=conn)
    return [row_dict(r) for r in conn.execute(select(table).limit(LIMIT))]


def sync_status(conn: Connection) -> list[dict[str, Any]] | None:
    """Per vendor sync: where its cursor is and when it last ran; None while syncs do not exist."""
    return _rows(conn, SYNC_TABLE)


def rule_metrics(conn: Connection) -> list[dict[str, Any]] | None:
    """Per rule: firings and outcomes; None while rule firings are not recorded."""
    return _rows(conn, RULE_METRICS_TABLE)
