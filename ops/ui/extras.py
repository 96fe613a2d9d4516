"""The dashboard's sync and rule pages: the rows `hookyard sync status` and `hookyard rules list`
show, flattened into plain dicts for one generic table."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from events import runs, syncs
from events.sources import Source


def sync_status(conn: Connection, sources: Mapping[str, Source], now: datetime) -> list[dict[str, Any]]:
    """Every stream a source keeps fresh or has a cursor for: state, last run, lag, coverage, error."""
    rows = []
    for r in syncs.status(conn, sources, now):
        last = r["last_run"] or {}
        rows.append(
            {
                "stream": f"{r['source']}/{r['stream']}",
                "state": syncs.state_of(r),
                "every (s)": r["interval_s"],
                "last run": last.get("started_at"),
                "lag (s)": r["lag_s"],
                "coverage": last.get("coverage"),
                "coverage 24h": r["coverage_24h"],
                "failures": r["failures"],
                "last error": r["last_error"],
            }
        )
    return rows


def rule_metrics(conn: Connection) -> list[dict[str, Any]]:
    """Per rule that has acted or matched: events matched, throttled, shadowed; actions fired,
    failed, pending."""
    return [{"rule": rule, **counts} for rule, counts in sorted(runs.counts_by_rule(conn).items())]
