"""Event-driven fetches on a real (SQLite) database against the in-process fake Zendesk, with an
injected clock: what events ask for, coalescing, the idempotency key, breaker waits, the sweeper,
and a webhook and a fetch of one version in either order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, select

from connectors import registry
from events import fetches, syncs
from events.db import EventState, events, object_fetches, records
from events.fetches import Asked
from events.ids import new_event_id
from events.queue import FETCH_QUEUE, hookyard_queues, queue_groups, sync_schedule
from events.source_api import FetchConfig
from events.sources import Source
from schemas.envelope import Envelope
from schemas.errors import CircuitOpen, ConfigError
from tests.fakes.process import InProcessFake, in_process
from tests.helpers import FakeClock
from tests.sync_kit import NOW, client, load, source_text
from workers import fetching, processing, syncing
from workers.fetching import Outcome

START = datetime.fromtimestamp(NOW, UTC)
SHOW = "GET /api/v2/tickets/{id}.json"
FETCH = '[sources.src.fetch]\nstreams = ["tickets"]\nwindow = "30s"\n'


@pytest.fixture
def desk() -> InProcessFake:
    return in_process("zendesk", {"clock": NOW, "counts": {"tickets": 5}})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def sources(desk: InProcessFake, tmp_path: Path, fetch: str = FETCH) -> dict[str, Source]:
    return load(tmp_path, source_text("zendesk", desk.url) + fetch)


def make_deps(
    desk: InProcessFake, tmp_path: Path, clock: FakeClock, http: httpx.Client | None = None
) -> syncing.Deps:
    configured = sources(desk, tmp_path)
    session = http or desk.client()
    return syncing.Deps(sources=configured, client_for=lambda s: client(s, session), clock=clock)


def ticket_event(ticket_id: int, updated: datetime | None, kind: str = "ticket.updated") -> Any:
    """A stored Zendesk event row (the columns `Envelope.from_row` reads)."""
    detail = {"id": str(ticket_id), "subject": "From the webhook"}
    if updated is not None:
        detail["updated_at"] = updated.isoformat()
    return SimpleNamespace(
        id=new_event_id(0),
        source="src",
        vendor="zendesk",
        type=kind,
        dedupe_key=new_event_id(0),
        occurred_at=None,
        received_at=START,
        headers={},
        payload={"type": "zen:event-type:ticket.custom_field_changed", "detail": detail},
    )


def ask(engine: Engine, configured: dict[str, Source], row: Any, now: datetime) -> list[Asked]:
    with engine.begin() as conn:
        return [outcome for _, outcome, _ in fetches.request(conn, fetches.asks_of(row, configured), now)]


def fetch_row(engine: Engine, ticket_id: int = 3) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(object_fetches).where(object_fetches.c.object_id == str(ticket_id))).one()


def truth_of(desk: InProcessFake, ticket_id: int) -> dict[str, Any]:
    return next(t for t in desk.control.objects("tickets") if t["id"] == ticket_id)


def go(engine: Engine, deps: syncing.Deps, ticket_id: int = 3) -> Outcome:
    return fetching.run(engine, deps, "src", "tickets", str(ticket_id))


def test_a_burst_to_one_object_within_its_window_makes_one_fetch(
    engine: Engine, desk: InProcessFake, tmp_path: Path, clock: FakeClock
) -> None:
    """Ten updates to one ticket in nine seconds: the first schedules a fetch due when the 30 s
    window ends, the other nine join it; a message before then finds nothing due; at the end of the
    window one call reads the ticket whole, and a second message for it does nothing."""
    deps = make_deps(desk, tmp_path, clock)
    taken = []
    for second in range(10):
        taken += ask(engine, deps.sources, ticket_event(3, None), START + timedelta(seconds=second))
    assert taken == [Asked.SCHEDULED] + [Asked.COALESCED] * 9
    row = fetch_row(engine)
    assert (row.state, row.requests, row.due_at) == ("pending", 10, START + timedelta(seconds=30))
    clock.advance(29)
    assert go(engine, deps) is Outcome.NOT_DUE
    clock.advance(1)
    assert go(engine, deps) is Outcome.FETCHED
    assert go(engine, deps) is Outcome.NOT_DUE
    assert desk.control.endpoint(SHOW)["requests"] == 1
    with engine.connect() as conn:
        stored = conn.execute(select(records).where(records.c.external_id == "3")).one()
    assert stored.data["subject"] == truth_of(desk, 3)["attrs"]["subject"]
    assert stored.run_id.startswith(processing.FETCH_RUN_PREFIX)
    done = fetch_row(engine)
    assert (done.state, done.requests, done.fetched_version) == ("done", 0, stored.updated_at)


def test_a_version_already_fetched_is_skipped_and_a_newer_one_fetched(
    engine: Engine, desk: InProcessFake, tmp_path: Path, clock: FakeClock
) -> None:
    """The idempotency key is (vendor, source, object, version): once a fetch has read a version, an
    event announcing it or an older one asks for nothing; a newer one schedules a fetch."""
    deps = make_deps(desk, tmp_path, clock)
    ask(engine, deps.sources, ticket_event(3, None), START)
    clock.advance(30)
    assert go(engine, deps) is Outcome.FETCHED
    read = fetch_row(engine).fetched_version
    later = clock.now
    assert ask(engine, deps.sources, ticket_event(3, read), later) == [Asked.SKIPPED]
    assert ask(engine, deps.sources, ticket_event(3, read - timedelta(hours=1)), later) == [Asked.SKIPPED]
    assert fetch_row(engine).state == "done"
    assert ask(engine, deps.sources, ticket_event(3, read + timedelta(seconds=1)), later) == [Asked.SCHEDULED]
    assert fetch_row(engine).state == "pending"


@pytest.mark.parametrize("announced_s", [None, 0, 1])
def test_an_ask_during_the_call_makes_the_fetch_go_once_more_unless_it_read_that_version(
    engine: Engine, desk: InProcessFake, tmp_path: Path, clock: FakeClock, announced_s: int | None
) -> None:
    """An event about the ticket arriving while its fetch is in flight may be newer than the answer:
    the row goes back to pending, one window on — unless it announced a version no newer than the
    one the call read (then the fetch is done)."""
    configured = sources(desk, tmp_path)
    read = datetime.fromtimestamp(truth_of(desk, 3)["updated"], UTC)
    version = None if announced_s is None else read + timedelta(seconds=announced_s)

    def meanwhile(request: httpx.Request) -> httpx.Response:
        ask(engine, configured, ticket_event(3, version), clock.now)
        return desk.transport.handle_request(request)

    deps = make_deps(desk, tmp_path, clock, httpx.Client(transport=httpx.MockTransport(meanwhile)))
    ask(engine, deps.sources, ticket_event(3, None), START)
    clock.advance(30)
    assert go(engine, deps) is Outcome.FETCHED
    row = fetch_row(engine)
    if announced_s == 0:
        assert (row.state, row.requests, row.fetched_version) == ("done", 0, read)
    else:
        assert (row.state, row.requests, row.due_at) == ("pending", 1, clock.now + timedelta(seconds=30))


def test_an_open_breaker_moves_the_fetch_to_its_next_probe_without_using_an_attempt(
    engine: Engine, desk: InProcessFake, tmp_path: Path, clock: FakeClock
) -> None:
    """While the vendor's breaker is open the fetch waits in the database until the next probe, as
    often as it takes, and no attempt is used; `sync status` shows it waiting; the sweeper sends it
    when due; while another caller holds the probe it looks again after one open interval, and it
    completes once the vendor is back."""
    working = make_deps(desk, tmp_path, clock)

    def broken(source: Source) -> Any:
        raise CircuitOpen("zendesk/src: circuit open, next probe in 20.0s", retry_after_s=20.0)

    down = syncing.Deps(sources=working.sources, client_for=broken, clock=clock)
    ask(engine, working.sources, ticket_event(3, None), START)
    clock.advance(30)
    for _ in range(fetching.FETCH_RETRY.max_attempts + 2):
        assert go(engine, down) is Outcome.WAITING
        row = fetch_row(engine)
        assert (row.state, row.attempts, row.due_at) == ("pending", 0, clock.now + timedelta(seconds=20))
        assert go(engine, down) is Outcome.NOT_DUE
        clock.advance(20)
    assert fetch_row(engine).waits == fetching.FETCH_RETRY.max_attempts + 2
    with engine.connect() as conn:
        (status,) = [s for s in syncs.status(conn, working.sources, clock.now) if s["stream"] == "tickets"]
    assert status["fetches"] == {"pending": 1, "waiting": 1, "running": 0, "failed": 0}
    assert fetching.sweep(engine, now=clock.now, requeue_s=60) == [("src", "tickets", "3")]
    assert fetching.sweep(engine, now=clock.now, requeue_s=60) == []

    def probing(source: Source) -> Any:
        raise CircuitOpen("zendesk/src: circuit half_open, next probe in 60.0s", retry_after_s=60.0)

    half_open = syncing.Deps(sources=working.sources, client_for=probing, clock=clock, breaker_open_s=5)
    assert go(engine, half_open) is Outcome.WAITING
    assert fetch_row(engine).due_at == clock.now + timedelta(seconds=5)  # not the probe's 60 s lease
    clock.advance(5)
    assert go(engine, working) is Outcome.FETCHED
    assert (fetch_row(engine).state, fetch_row(engine).waits) == ("done", 0)


def test_a_refusal_fails_the_fetch_and_the_next_event_starts_again(
    engine: Engine, desk: InProcessFake, tmp_path: Path, clock: FakeClock
) -> None:
    """A 404 cannot be cured by retrying: the fetch fails at once (kept, with its error, for
    operators); a 503 backs off and counts an attempt; a later event schedules the object again."""
    deps = make_deps(desk, tmp_path, clock)
    ask(engine, deps.sources, ticket_event(3, None), START)
    clock.advance(30)
    desk.control.fault("error", "/api/v2/tickets/*", status=503, count=None)
    assert go(engine, deps) is Outcome.RETRY
    row = fetch_row(engine)
    assert (row.state, row.attempts, row.waits) == ("pending", 1, 0) and row.due_at > clock.now
    clock.advance(3600)
    desk.control.clear_faults()
    desk.control.fault("error", "/api/v2/tickets/*", status=404, count=None)
    assert go(engine, deps) is Outcome.FAILED
    row = fetch_row(engine)
    assert (row.state, row.attempts) == ("failed", 2) and "404" in row.last_error
    assert ask(engine, deps.sources, ticket_event(3, None), clock.now) == [Asked.SCHEDULED]


def test_the_sweeper_sends_a_lost_message_again_after_requeue_s(
    engine: Engine, desk: InProcessFake, tmp_path: Path, clock: FakeClock
) -> None:
    """A scheduled fetch already has its message on the way; if it is not started `requeue_s` after
    it was due, the sweeper sends another (a flushed broker loses nothing)."""
    deps = make_deps(desk, tmp_path, clock)
    ask(engine, deps.sources, ticket_event(3, None), START)
    due = START + timedelta(seconds=30)
    assert fetching.sweep(engine, now=due, requeue_s=60) == []
    assert fetching.sweep(engine, now=due + timedelta(seconds=61), requeue_s=60) == [("src", "tickets", "3")]


def test_a_webhook_and_a_fetch_of_one_version_keep_the_fetched_copy_in_either_order(
    engine: Engine, desk: InProcessFake, tmp_path: Path, clock: FakeClock
) -> None:
    """Processing a ticket event records its (partial) copy and asks for a fetch in the same
    transaction; the fetch's whole copy of the same version replaces it; the same webhook again
    after the fetch leaves the fetched copy; a webhook of a newer version wins."""
    deps = make_deps(desk, tmp_path, clock)
    truth = truth_of(desk, 4)
    version = datetime.fromtimestamp(truth["updated"], UTC)
    sent: list[list[tuple[str, str, str, float]]] = []
    ctx = processing.Context(sources=deps.sources, lease_s=30, clock=clock, publish_fetches=sent.append)

    def webhook(updated: datetime) -> None:
        row = ticket_event(4, updated)
        with engine.begin() as conn:
            body = orjson.dumps(row.payload)
            conn.execute(
                events.insert().values(
                    **{k: v for k, v in vars(row).items() if k != "occurred_at"},
                    state=EventState.ACCEPTED,
                    attempts=0,
                    available_at=clock.now,
                    relay_at=clock.now,
                    relayed=0,
                    body=body,
                )
            )
        assert processing.process(engine, row.id, ctx) is processing.Outcome.DONE

    def subject() -> str:
        with engine.connect() as conn:
            return str(
                conn.execute(select(records.c.data).where(records.c.external_id == "4")).scalar_one()[
                    "subject"
                ]
            )

    webhook(version)
    assert subject() == "From the webhook" and sent == [[("src", "tickets", "4", 30.0)]]
    clock.advance(30)
    assert go(engine, deps, 4) is Outcome.FETCHED
    assert subject() == truth["attrs"]["subject"]
    webhook(version)
    assert subject() == truth["attrs"]["subject"]
    webhook(version + timedelta(seconds=1))
    assert subject() == "From the webhook"


def envelope(vendor: str, kind: str, payload: dict[str, Any]) -> Envelope:
    return Envelope(
        id="e1", source="s", vendor=vendor, type=kind, dedupe_key="k", received_at=START, payload=payload
    )


@pytest.mark.parametrize(
    ("vendor", "kind", "payload", "expected"),
    [
        (
            "stripe",
            "stripe.v1.billing.meter.error_report_triggered",
            {
                "id": "evt_thin",
                "object": "v2.core.event",
                "created": "2026-01-01T00:00:00Z",
                "related_object": {"id": "mtr_1", "type": "billing.meter"},
            },
            [("events", "evt_thin", "2026-01-01T00:00:00+00:00")],
        ),
        (
            "stripe",
            "customer.updated",
            {"id": "evt_1", "created": 1, "data": {"object": {"id": "cus_1", "object": "customer"}}},
            [],
        ),
        (
            "shopify",
            "order.updated",
            {"id": 1001, "updated_at": "2026-01-01T00:00:00Z"},
            [("orders", "1001", "2026-01-01T00:00:00+00:00")],
        ),
        ("shopify", "customer.created", {"id": 7}, [("customers", "7", None)]),
        ("shopify", "refund.created", {"id": 9}, []),
        (
            "klaviyo",
            "marketing.email_opened",
            {
                "external_id": "x",
                "payload": {
                    "data": {"relationships": {"profile": {"data": {"type": "profile", "id": "P1"}}}},
                    "included": [
                        {"type": "profile", "id": "P1", "attributes": {"updated": "2026-01-02T00:00:00Z"}}
                    ],
                },
            },
            [("profiles", "P1", "2026-01-02T00:00:00+00:00")],
        ),
        ("zendesk", "ticket.created", {"detail": {"id": "12"}}, [("tickets", "12", None)]),
        ("zendesk", "zendesk.user.created", {"detail": {"id": "12"}}, []),
    ],
)
def test_connectors_name_the_objects_their_events_are_about(
    vendor: str, kind: str, payload: dict[str, Any], expected: list[tuple[str, str, str | None]]
) -> None:
    """Stripe: a thin event names itself, a snapshot event nothing; Shopify: the order or customer;
    Klaviyo: the item's profile; Zendesk: the ticket — each at the version the event shows."""
    api = registry.get(vendor).api
    assert api is not None and api.subjects is not None
    found = [
        (s.stream, s.object_id, s.version.isoformat() if s.version else None)
        for s in api.subjects(envelope(vendor, kind, payload))
    ]
    assert found == expected


def test_types_narrow_which_events_ask(desk: InProcessFake, tmp_path: Path) -> None:
    """`types` (globs of canonical types) limits the events that ask; other types ask for nothing."""
    configured = sources(desk, tmp_path, FETCH + 'types = ["ticket.created"]\n')
    assert fetches.asks_of(ticket_event(1, None, "ticket.updated"), configured) == []
    assert [a.object_id for a in fetches.asks_of(ticket_event(1, None, "ticket.created"), configured)] == [
        "1"
    ]


@pytest.mark.parametrize(
    ("vendor", "fetch", "message"),
    [
        ("zendesk", 'streams = ["orders"]', "fetch.streams: 'orders' is not a stream of zendesk"),
        ("klaviyo", 'streams = ["events"]', "(those are: profiles)"),
        ("zendesk", "streams = []", "fetch.streams: List should have at least 1 item"),
        ("zendesk", 'streams = ["tickets"]\nwindow = "2h"', "fetch.window: at most 3600s"),
        ("zendesk", 'streams = ["tickets"]\nwindow = "soon"', "fetch.window: duration 'soon'"),
        ("zendesk", 'streams = ["tickets"]\ntypes = [" "]', "fetch.types: an event type cannot be empty"),
        ("zendesk", 'streams = ["tickets"]\nevery = 1', "fetch.every: Extra inputs are not permitted"),
        ("chatwoot", 'streams = ["conversations"]', "connector chatwoot names no objects in its events"),
    ],
)
def test_a_bad_fetch_block_stops_the_load_with_one_line(
    tmp_path: Path, vendor: str, fetch: str, message: str
) -> None:
    """Every mistake in `[sources.X.fetch]` is one ConfigError naming the file, source and field."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, source_text(vendor, "http://fake.test") + f"[sources.src.fetch]\n{fetch}\n")
    assert message in str(caught.value) and "sources.src.fetch" in str(caught.value)


def test_fetches_need_the_vendor_api(tmp_path: Path) -> None:
    """A source without base_url and token cannot fetch."""
    text = (
        '[sources.src]\nconnector = "zendesk"\nsecrets = ["s"]\n[sources.src.fetch]\nstreams = ["tickets"]\n'
    )
    with pytest.raises(ConfigError, match=r"sources.src.fetch: fetches need the vendor API's base_url"):
        load(tmp_path, text)


def test_the_readme_fetch_block_loads_as_written(tmp_path: Path) -> None:
    """The README's `[sources.shop.fetch]` example is valid: orders of `order.*` events, a 10 s window;
    without `window` it is 10 s, and 0s (no coalescing) is allowed."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(b for b in readme.split("```toml\n")[1:] if b.startswith("[sources.shop.fetch]"))
    text = source_text("shopify", "http://fake.test", name="shop") + block.split("```")[0]
    fetch = load(tmp_path, text)["shop"].fetch
    assert fetch == FetchConfig(streams=("orders",), types=("order.*",), window_s=10.0)
    assert fetch.wants("order.updated", "orders") and not fetch.wants("customer.updated", "orders")
    bare = load(tmp_path, source_text("zendesk", "http://fake.test") + FETCH.replace('window = "30s"\n', ""))
    assert bare["src"].fetch is not None and bare["src"].fetch.window_s == 10.0
    instant = load(tmp_path, source_text("zendesk", "http://fake.test") + FETCH.replace("30s", "0s"))
    assert instant["src"].fetch is not None and instant["src"].fetch.window_s == 0.0


def test_fetches_have_their_own_queue_and_the_sweeper_without_syncs(tmp_path: Path) -> None:
    """The sync group's workers consume `hookyard.fetch`; a source that only fetches still gets beat's
    sweeper."""
    assert FETCH_QUEUE in queue_groups(["zendesk"])["sync"] and FETCH_QUEUE in hookyard_queues(["zendesk"])
    entries = sync_schedule(load(tmp_path, source_text("zendesk", "http://fake.test") + FETCH), 5.0)
    assert list(entries) == ["sync-sweep"]


def test_sync_status_prints_open_fetches_in_one_cell() -> None:
    """`hookyard sync status` shows pending (of which waiting), running and failed fetches, or —."""
    from ops.cli_sync import _fetches

    assert (
        _fetches({"pending": 3, "waiting": 2, "running": 0, "failed": 1})
        == "3 pending (2 waiting) · 1 failed"
    )
    assert _fetches(dict(fetches.NO_FETCHES)) == "—"


def test_a_fetch_whose_worker_died_is_sent_again_and_taken_over(
    engine: Engine, desk: InProcessFake, tmp_path: Path, clock: FakeClock
) -> None:
    """A worker killed holding a fetch's lease: once the lease lapses the sweeper sends the fetch
    again and the next worker takes it over; the dead worker's late finish changes nothing."""
    deps = make_deps(desk, tmp_path, clock)
    ask(engine, deps.sources, ticket_event(3, None), START)
    clock.advance(30)
    dead = fetching.claim(engine, deps, "src", "tickets", "3")
    assert dead is not None and go(engine, deps) is Outcome.NOT_DUE
    assert fetching.sweep(engine, now=clock.now, requeue_s=60) == []
    clock.advance(deps.lease_s + 1)
    assert fetching.sweep(engine, now=clock.now, requeue_s=60) == [("src", "tickets", "3")]
    assert go(engine, deps) is Outcome.FETCHED
    assert desk.control.endpoint(SHOW)["requests"] == 1
    with engine.begin() as conn:
        assert fetching._finish(conn, deps, ("src", "tickets", "3"), dead, Outcome.FETCHED, None) is (
            Outcome.LOST_LEASE
        )
