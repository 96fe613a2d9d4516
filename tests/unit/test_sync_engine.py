"""The sync engine on a real (SQLite) database against in-process fakes: leases, checkpoints, the
shared upsert, coverage, quarantine, and how a run ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from events.db import quarantine, source_flags, sync_cursors
from schemas.records import Order
from tests.fakes.process import InProcessFake, in_process
from tests.sync_kit import NOW, deps, load, runs, source_text, stored, truth
from workers import processing, syncing
from workers.syncing import RunStatus


@pytest.fixture
def shop() -> InProcessFake:
    return in_process("shopify", {"clock": NOW, "counts": {"customers": 20, "orders": 120}})


def shop_deps(shop: InProcessFake, tmp_path: Path, **overrides: object) -> syncing.Deps:
    sources = load(tmp_path, source_text("shopify", shop.url, api="page_size = 25\n"))
    return deps(shop, sources, **overrides)  # type: ignore[arg-type]


def go(
    engine: Engine, d: syncing.Deps, stream: str = "orders", slot: str = "s1", **kw: object
) -> syncing.RunResult:
    return syncing.run(engine, d, "src", stream, slot=slot, triggered_by="manual", **kw)  # type: ignore[arg-type]


def test_a_full_run_then_an_incremental_one_reads_only_what_changed(
    engine: Engine, shop: InProcessFake, tmp_path: Path
) -> None:
    """Every order lands once; after one change the next run reads it (and the boundary second) only."""
    d = shop_deps(shop, tmp_path)
    first = go(engine, d)
    assert first.status is RunStatus.DONE and first.counts.applied == 120
    assert set(stored(engine, "shopify", "order")) == set(truth(shop, "orders"))
    shop.control.mutate("orders", id=1005, set={"email": "new@example.com"})
    second = go(engine, d, slot="s2")
    assert second.status is RunStatus.DONE
    assert (second.counts.applied, second.counts.changed) == (1, 1)
    assert stored(engine, "shopify", "order")["1005"][1] == 2  # version: written twice in all
    history = runs(engine)
    assert [r.status for r in history] == ["done", "done"]
    assert history[1].cursor_before == first.cursor and history[1].pages >= 1


def test_a_change_between_pages_is_read_in_the_same_walk(
    engine: Engine, shop: InProcessFake, tmp_path: Path
) -> None:
    """An order changed while the walk is on page 2 comes again at its end, and the newer copy wins."""
    oldest = min(shop.fake.store.rows("orders"), key=lambda r: (r.stream, r.id)).id
    shop.control.mutate("orders", id=oldest, set={"email": "mid@example.com"}, when={"path": "*", "after": 1})
    result = go(engine, shop_deps(shop, tmp_path))
    assert result.status is RunStatus.DONE
    with engine.connect() as conn:
        data = conn.execute(
            select(processing.records.c.data).where(processing.records.c.external_id == str(oldest))
        )
        assert data.scalar_one()["email"] == "mid@example.com"
    assert set(stored(engine, "shopify", "order")) == set(truth(shop, "orders"))


def test_a_walk_cut_short_resumes_from_its_last_checkpoint(
    engine: Engine, shop: InProcessFake, tmp_path: Path
) -> None:
    """A refusal on page 3 keeps pages 1-2 and their cursor; the next run starts there: no gap, and
    no record written twice."""
    shop.control.fault("error", "/admin/*", status=400, after=2)
    d = shop_deps(shop, tmp_path)
    cut = go(engine, d)
    assert cut.status is RunStatus.FAILED and cut.counts.applied == 50 and cut.cursor is not None
    assert "after" in cut.cursor
    done = go(engine, d, slot="s2")
    assert done.status is RunStatus.DONE and done.counts.applied == 70
    orders = stored(engine, "shopify", "order")
    assert set(orders) == set(truth(shop, "orders"))
    assert {version for _, version in orders.values()} == {1}


def test_a_leased_stream_is_busy_and_a_slot_runs_once(
    engine: Engine, shop: InProcessFake, tmp_path: Path
) -> None:
    """A second trigger while a run holds the lease does nothing; the same slot after it, neither."""
    d = shop_deps(shop, tmp_path)
    seen: list[syncing.RunResult] = []
    go(
        engine,
        d,
        progress=lambda counts, pages: seen.append(go(engine, d, slot="other")) if pages == 1 else None,
    )
    assert [r.status for r in seen] == [RunStatus.BUSY]
    assert go(engine, d).status is RunStatus.DUPLICATE
    assert len(runs(engine)) == 1


def test_a_dead_workers_run_is_taken_over_by_its_own_slot(
    engine: Engine, shop: InProcessFake, tmp_path: Path
) -> None:
    """A lease that lapsed mid-run (the worker died) is abandoned; a redelivery of that slot takes the
    same run over from its checkpoint, and the old holder, if it wakes, is fenced off."""
    d = shop_deps(shop, tmp_path)

    def die(counts: object, pages: int) -> None:
        if pages == 2:
            with engine.begin() as conn:
                conn.execute(
                    update(sync_cursors).values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
                )
            raise SystemExit  # the worker is gone: nothing after this page

    with pytest.raises(SystemExit):
        go(engine, d, progress=die)
    sent: list[tuple[str, str, str]] = []
    assert syncing.sweep(engine, now=datetime.now(UTC), requeue_s=60, send=lambda *a: sent.append(a)) == 1
    assert sent == [("src", "orders", "s1")]
    resumed = go(engine, d)
    assert resumed.status is RunStatus.DONE and resumed.counts.applied == 70
    (only,) = runs(engine)
    assert (only.status, only.pages, only.applied) == ("done", 5, 120)


def test_webhook_and_sync_in_either_order_keep_the_newest_and_count_coverage(
    engine: Engine, shop: InProcessFake, tmp_path: Path
) -> None:
    """A webhook's copy of the same version counts as covered and stays; an older webhook copy is
    replaced by the sync; a newer one is never overwritten (the sync's is stale)."""
    rows = {r.id: r for r in shop.fake.store.rows("orders")}
    same, older, newer = 1001, 1002, 1003

    def at(order_id: int, shift_s: float) -> Order:
        when = datetime.fromtimestamp(int(rows[order_id].updated), UTC) + timedelta(seconds=shift_s)
        return Order(external_id=str(order_id), email="webhook@example.com", updated_at=when)

    with engine.begin() as conn:
        processing.upsert_records(
            conn,
            [
                ("shopify", "e1", at(same, 0)),
                ("shopify", "e2", at(older, -60)),
                ("shopify", "e3", at(newer, 60)),
            ],
        )
    result = go(engine, shop_deps(shop, tmp_path))
    assert (result.counts.stale, result.counts.covered) == (1, 2)
    assert result.counts.changed == 120  # 117 new, one newer than its webhook copy, two covered
    with engine.connect() as conn:
        found = conn.execute(select(processing.records.c.external_id, processing.records.c.data))
        emails = {r.external_id: r.data["email"] for r in found}
    assert (
        emails["1001"] == emails["1003"] == "webhook@example.com" and emails["1002"] != "webhook@example.com"
    )
    with engine.begin() as conn:  # and the other way round: a webhook after the sync, older, changes nothing
        processing.upsert_records(conn, [("shopify", "e4", at(older, -120))])
    assert stored(engine, "shopify", "order")["1002"][1] == 2


def test_an_item_of_the_wrong_type_is_quarantined_and_the_run_goes_on(engine: Engine, tmp_path: Path) -> None:
    """One ticket whose subject is a number lands in quarantine with its field error; the rest sync."""
    desk = in_process("zendesk", {"clock": NOW, "counts": {"tickets": 30}})
    desk.control.mutate("tickets", id=7, set={"subject": 12345})
    desk.control.advance(61)  # the export holds back the last minute of changes
    d = deps(desk, load(tmp_path, source_text("zendesk", desk.url)))
    result = syncing.run(engine, d, "src", "tickets", slot="s", triggered_by="manual")
    assert result.status is RunStatus.DONE and (result.counts.quarantined, result.counts.applied) == (1, 29)
    with engine.connect() as conn:
        (row,) = conn.execute(select(quarantine)).all()
    assert (row.item_key, row.errors[0]["loc"]) == ("7", "subject") and row.item["subject"] == 12345
    syncing.run(engine, d, "src", "tickets", slot="s2", triggered_by="manual", full=True)
    with engine.connect() as conn:
        assert conn.execute(select(quarantine.c.seen)).scalar_one() == 2  # seen again, kept once


def test_an_expired_token_flags_the_source_and_stops_its_syncs(
    engine: Engine, shop: InProcessFake, tmp_path: Path
) -> None:
    """A 401 ends the run failed and flags the source; later runs do not call the vendor at all."""
    shop.control.fault("unauthorized", "/admin/*", count=None)
    d = shop_deps(shop, tmp_path)
    failed = go(engine, d)
    assert failed.status is RunStatus.FAILED and "ReauthorizationRequired" in (failed.error or "")
    with engine.connect() as conn:
        assert conn.execute(
            select(source_flags.c.needs_reauth).where(source_flags.c.source == "src")
        ).scalar_one()
    calls = shop.control.stats()["requests"]
    assert go(engine, d, slot="s2").status is RunStatus.FLAGGED
    assert shop.control.stats()["requests"] == calls


def test_a_throttled_run_waits_in_the_database_and_the_sweeper_resumes_it(
    engine: Engine, shop: InProcessFake, tmp_path: Path
) -> None:
    """Out of in-process patience, a throttled run ends `waiting` with resume_at; when due the sweeper
    sends it, once until it starts."""
    shop.control.fault("error", "/admin/*", status=503, count=None)
    d = shop_deps(shop, tmp_path)
    waiting = go(engine, d)
    assert waiting.status is RunStatus.WAITING and waiting.resume_at is not None
    sent: list[tuple[str, str, str]] = []
    later = waiting.resume_at + timedelta(seconds=1)
    assert (
        syncing.sweep(
            engine, now=waiting.resume_at - timedelta(seconds=1), requeue_s=60, send=lambda *a: sent.append(a)
        )
        == 0
    )
    assert syncing.sweep(engine, now=later, requeue_s=60, send=lambda *a: sent.append(a)) == 1
    assert syncing.sweep(engine, now=later, requeue_s=60, send=lambda *a: sent.append(a)) == 0
    assert sent[0][2].startswith("resume-")


def test_a_run_out_of_time_checkpoints_and_goes_on_at_once(
    engine: Engine, shop: InProcessFake, tmp_path: Path
) -> None:
    """With no time left in its slice a run stops after a page, `partial`, due at once."""
    d = shop_deps(shop, tmp_path, slice_s=-1.0)
    first = go(engine, d)
    assert first.status is RunStatus.PARTIAL and first.counts.applied == 25
    assert first.resume_at is not None and first.resume_at <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("fault", "status", "applied"),
    [("malformed", RunStatus.WAITING, 25), ("repeat_page", RunStatus.FAILED, 50)],  # page 3 repeats 2
)
def test_a_garbled_answer_waits_and_a_repeated_cursor_fails(
    engine: Engine, shop: InProcessFake, tmp_path: Path, fault: str, status: RunStatus, applied: int
) -> None:
    """Half a JSON body is transient (retried, then the run waits); a page handed back twice trips the
    loop guard, which no retry can fix. Either way the pages before it are kept."""
    shop.control.fault(fault, "/admin/*", after=1, count=None)
    result = go(engine, shop_deps(shop, tmp_path))
    assert result.status is status and result.counts.applied == applied
    assert ("PaginationLoop" if fault == "repeat_page" else "MalformedAnswer") in (result.error or "")


def test_fetch_one_stores_a_single_object(engine: Engine, shop: InProcessFake, tmp_path: Path) -> None:
    """An object read by id goes through the same store, with no cursor and no lease."""
    counts = syncing.fetch_one(engine, shop_deps(shop, tmp_path), "src", "orders", "1010")
    assert counts.applied == 1 and list(stored(engine, "shopify", "order")) == ["1010"]
