"""What operators see and do about syncs: status with lag and coverage, run history, an audited
rewind, the quarantine, the beat schedule, and the /v1 reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update
from starlette.applications import Starlette
from starlette.routing import Mount

from events import syncs
from events.db import audit_log, sync_cursors, sync_runs, utcnow
from events.queue import MAINTENANCE_QUEUE, SYNC_QUEUE, SYNC_SWEEP_TASK, SYNC_TASK, sync_schedule
from ops.api import create_api
from tests.fakes.process import in_process
from tests.sync_kit import NOW, deps, load, source_text
from tests.unit.test_api import Client, record_publish, token
from workers import syncing


@pytest.fixture
def synced(engine: Engine, tmp_path: Path) -> syncing.Deps:
    """One Zendesk source whose tickets stream ran once, one ticket quarantined."""
    desk = in_process("zendesk", {"clock": NOW, "counts": {"tickets": 12}})
    desk.control.mutate("tickets", id=3, set={"status": ["not", "text"]})
    desk.control.advance(61)
    d = deps(desk, load(tmp_path, source_text("zendesk", desk.url, sync='tickets = "5m"\n')))
    syncing.run(engine, d, "src", "tickets", slot="s1", triggered_by="beat")
    return d


def test_status_shows_cursor_lag_last_run_and_coverage(engine: Engine, synced: syncing.Deps) -> None:
    """A stream that ran: its cursor, its lag from the run's start, the run's counts, no coverage yet
    (nothing came by webhook, so the coverage is 0 of what was new)."""
    with engine.connect() as conn:
        (row,) = syncs.status(conn, synced.sources, utcnow())
    assert (row["source"], row["stream"], row["interval_s"]) == ("src", "tickets", 300.0)
    assert row["cursor"]["cursor"] and row["running"] is False and 0 <= row["lag_s"] < 60
    last = row["last_run"]
    assert (last["status"], last["applied"], last["quarantined"], last["coverage"]) == ("done", 11, 1, 0.0)
    assert row["coverage_24h"] == 0.0


def test_rewind_moves_the_cursor_is_audited_and_refused_while_running(
    engine: Engine, synced: syncing.Deps
) -> None:
    """The cursor points at the time asked for and the change is in the audit log; a stream a run
    holds cannot be rewound."""
    to = datetime(2023, 11, 1, tzinfo=UTC)
    with engine.begin() as conn:
        change = syncs.rewind(conn, synced.sources, "src", "tickets", to, actor="cli:test", now=utcnow())
    assert change["cursor_after"] == {"start_time": int(to.timestamp())}
    with engine.connect() as conn:
        assert conn.execute(select(sync_cursors.c.cursor)).scalar_one() == change["cursor_after"]
        assert conn.execute(select(audit_log.c.action, audit_log.c.target)).one() == (
            "sync.rewind",
            "src/tickets",
        )
    with engine.begin() as conn:
        conn.execute(
            update(sync_cursors).values(lease_token="x", lease_until=utcnow() + timedelta(minutes=1))
        )
    with pytest.raises(syncs.RewindRefused), engine.begin() as conn:
        syncs.rewind(conn, synced.sources, "src", "tickets", to, actor="cli:test", now=utcnow())


def test_the_api_reads_syncs_history_and_quarantine(engine: Engine, synced: syncing.Deps) -> None:
    """/v1/syncs lists streams, /v1/syncs/{source}/{stream} adds the runs, /v1/quarantine the items."""
    client = Client(
        Starlette(routes=[Mount("/v1", app=create_api(engine, synced.sources, publish=record_publish))])
    )
    read = token(engine, "read")
    assert client.get("/v1/syncs").status_code == 401
    [listed] = client.get("/v1/syncs", headers=read).json()
    one = client.get("/v1/syncs/src/tickets", headers=read).json()
    assert listed["stream"] == one["stream"] == "tickets" and [r["status"] for r in one["runs"]] == ["done"]
    missing = client.get("/v1/syncs/src/nope", headers=read)
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    [item] = client.get("/v1/quarantine", headers=read).json()
    assert (item["item_key"], item["errors"][0]["loc"]) == ("3", "status")


def test_beat_entries_expire_after_their_interval(tmp_path: Path) -> None:
    """Each configured stream is a beat entry on the sync queue that expires after its own interval,
    plus the sweeper; no stream, no entries."""
    sources = load(
        tmp_path, source_text("shopify", "http://fake.test", sync='orders = "5m"\ncustomers = "1h"\n')
    )
    entries = sync_schedule(sources, 5.0)
    assert entries["sync:src:orders"] == {
        "task": SYNC_TASK,
        "schedule": 300.0,
        "args": ["src", "orders"],
        "kwargs": {"triggered_by": "beat"},
        "options": {"queue": SYNC_QUEUE, "expires": 300.0},
    }
    assert entries["sync:src:customers"]["options"]["expires"] == 3600.0
    assert (
        entries["sync-sweep"]["task"] == SYNC_SWEEP_TASK
        and entries["sync-sweep"]["options"]["queue"] == MAINTENANCE_QUEUE
    )
    assert sync_schedule(load(tmp_path, source_text("shopify", "http://fake.test")), 5.0) == {}


def test_retention_prunes_old_runs_and_quarantine_but_never_a_running_run(
    engine: Engine, synced: syncing.Deps
) -> None:
    """Finished runs go with processed events, quarantined items with dead letters; a run still
    running stays whatever its age."""
    later = utcnow() + timedelta(days=100)
    with engine.begin() as conn:
        conn.execute(update(sync_runs).values(status="running", finished_at=None))
        kept = syncs.prune(conn, runs_before=later, quarantine_before=utcnow() - timedelta(days=1))
        assert kept == {"sync_runs": 0, "quarantine": 0}
        conn.execute(update(sync_runs).values(status="done", finished_at=utcnow()))
        assert syncs.prune(conn, runs_before=later, quarantine_before=later) == {
            "sync_runs": 1,
            "quarantine": 1,
        }
