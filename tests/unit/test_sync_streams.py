"""Every vendor stream against its fake, in process: a full walk cut after its first page and resumed
from that page's cursor, then incremental walks while the data changes before and during them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from connectors import registry
from connectors.streams import Cursor, Page, Reader
from schemas.errors import PaginationLoop
from schemas.records import Record
from tests.fakes.process import InProcessFake, in_process
from tests.sync_kit import NOW, reader, truth

Store = dict[tuple[str, str], Record]


def keep(store: Store, pages: list[Page]) -> None:
    """What the database does: the newest copy of each record wins."""
    for page in pages:
        assert page.rejected == []
        for record in page.records:
            held = store.get((record.kind, record.external_id))
            if (
                held is None
                or None in (held.updated_at, record.updated_at)
                or record.updated_at >= held.updated_at
            ):  # type: ignore[operator]
                store[(record.kind, record.external_id)] = record


def of(store: Store, kind: str) -> dict[str, dict[str, Any]]:
    return {key: record.data() for (k, key), record in store.items() if k == kind}


@dataclass
class Case:
    vendor: str
    stream: str
    api: str  # page sizes small enough for several pages
    change: Callable[[InProcessFake, dict[str, Any]], None]  # before (when is None) or during a walk
    check: Callable[[InProcessFake, Store], None]
    config: dict[str, Any] = field(default_factory=dict)
    settle_s: float = 0.0  # how far the fake's clock moves before each run (Zendesk's minute)


def mutate(
    collection: str, ids: tuple[Any, Any], **changes: Any
) -> Callable[[InProcessFake, dict[str, Any]], None]:
    """Change the first record before the walk and the second during it (before its 2nd request)."""

    def apply(fake: InProcessFake, when: dict[str, Any]) -> None:
        target = ids[1] if when else ids[0]
        key = "key" if isinstance(target, str) else "id"
        fake.control.mutate(collection, **{key: target}, **changes, **({"when": when} if when else {}))

    return apply


def add(collection: str) -> Callable[[InProcessFake, dict[str, Any]], None]:
    def apply(fake: InProcessFake, when: dict[str, Any]) -> None:
        fake.control.mutate(collection, add=1, **({"when": when} if when else {}))

    return apply


def same_keys(
    collection: str, kind: str, field_name: str | None = None, value: Any = None
) -> Callable[[InProcessFake, Store], None]:
    """Every live object of the fake is a record; the changed ones carry the change."""

    def check(fake: InProcessFake, store: Store) -> None:
        found = of(store, kind)
        assert set(found) == set(truth(fake, collection))
        if field_name is not None:
            assert sum(1 for data in found.values() if data[field_name] == value) == 2

    return check


def stripe_check(fake: InProcessFake, store: Store) -> None:
    customers = of(store, "customer")
    assert set(truth(fake, "customers")) <= set(customers)
    assert sum(1 for data in customers.values() if data["name"] == "Changed") == 2


def ga4_check(fake: InProcessFake, store: Store) -> None:
    rows = of(store, "report_row")
    assert len(rows) == 30 * 15  # 30 days × 5 countries × 3 devices, once each
    assert sum(1 for data in rows.values() if data["metrics"]["sessions"] == "99999") == 2


def stripe_ids(index: int) -> str:
    return in_process("stripe", {"clock": NOW}).fake.store.rows("customers")[index].key


CASES = [
    Case(
        "shopify",
        "orders",
        "page_size = 40\n",
        mutate("orders", (1010, 1020), set={"email": "x@example.com"}),
        same_keys("orders", "order", "email", "x@example.com"),
    ),
    Case(
        "shopify",
        "customers",
        "page_size = 15\n",
        mutate("customers", (510, 520), set={"lastName": "Z"}),
        same_keys("customers", "customer"),
    ),
    Case(
        "stripe",
        "events",
        "page_size = 40\n",
        mutate("customers", (stripe_ids(1), stripe_ids(2)), set={"name": "Changed"}),
        stripe_check,
    ),
    Case(
        "zendesk",
        "tickets",
        "page_size = 40\n",
        mutate("tickets", (10, 20), set={"subject": "Changed"}),
        same_keys("tickets", "ticket", "subject", "Changed"),
        settle_s=61,
    ),
    Case(
        "klaviyo",
        "profiles",
        "page_size = 20\n",
        mutate("profiles", (10, 20), set={"email": "x@example.com"}),
        same_keys("profiles", "profile", "email", "x@example.com"),
    ),
    Case("klaviyo", "events", "page_size = 100\n", add("events"), lambda fake, store: None),
    Case(
        "chatwoot",
        "conversations",
        "",
        mutate("conversations", (10, 20), set={"assignee_id": 999}),
        same_keys("conversations", "conversation", "assignee_id", "999"),
    ),
    Case("chatwoot", "messages", "", add("messages"), same_keys("messages", "message")),
    Case(
        "ga4", "report", "page_size = 100\n", mutate("rows", (445, 446), set={"sessions": 99999}), ga4_check
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.vendor}-{c.stream}")
def test_full_resumed_then_incremental_while_data_changes(case: Case, tmp_path: Path) -> None:
    """Cut after page 1 and resumed, the full walk has everything; changes made before and during the
    next walk are all read by it or the one after, newest copy kept."""
    fake = in_process(case.vendor, {"clock": NOW, **case.config})
    read = reader(fake, case.vendor, tmp_path, case.api)
    stream = registry.get(case.vendor).api.streams[case.stream]  # type: ignore[union-attr]
    store: Store = {}

    def walk(cursor: Cursor | None) -> Cursor | None:
        fake.control.advance(case.settle_s)
        pages = list(stream.walk(read, cursor))
        keep(store, pages)
        return pages[-1].cursor

    first = next(stream.walk(read, None))  # the walk dies after its first page …
    keep(store, [first])
    assert first.cursor is not None
    cursor = walk(first.cursor)  # … and resumes from its checkpoint
    case.change(fake, {})
    case.change(fake, {"path": "*", "after": 1})
    for _ in range(3):  # a change during the last walk but one may be held back (Zendesk's minute)
        cursor = walk(cursor)
    if case.stream == "events" and case.vendor == "klaviyo":
        assert set(of(store, "marketing_event")) == set(truth(fake, "events"))
    case.check(fake, store)


def test_a_stream_reads_no_more_than_it_must_once_caught_up(tmp_path: Path) -> None:
    """An incremental walk with nothing new is one request (Shopify: the boundary second only)."""
    fake = in_process("shopify", {"clock": NOW})
    read = reader(fake, "shopify", tmp_path)
    stream = registry.get("shopify").api.streams["orders"]  # type: ignore[union-attr]
    cursor = list(stream.walk(read, None))[-1].cursor
    before = fake.control.stats()["requests"]
    again = list(stream.walk(read, cursor))
    assert fake.control.stats()["requests"] == before + 1 and len(again) == 1
    assert again[-1].cursor == cursor


def test_conversation_pages_that_shift_under_the_walk_are_walked_again(tmp_path: Path) -> None:
    """A deletion between pages pulls every conversation up a place (one would be skipped): page 1 no
    longer matches what the pass began with, so the walk makes another pass and misses nothing."""
    fake = in_process("chatwoot", {"clock": NOW})
    read = reader(fake, "chatwoot", tmp_path)
    stream = registry.get("chatwoot").api.streams["conversations"]  # type: ignore[union-attr]
    top = max(fake.fake.store.rows("conversations"), key=lambda r: (r.stream, r.id)).id
    fake.control.mutate("conversations", id=top, delete=True, touch=False, when={"path": "*", "after": 1})
    store: Store = {}
    keep(store, list(stream.walk(read, None)))
    assert set(truth(fake, "conversations")) <= set(of(store, "conversation"))
    assert fake.control.stats()["requests"] > 5  # 3 pages, page 1 again, and a second pass


def test_a_page_that_ignores_paging_trips_the_loop_guard(tmp_path: Path) -> None:
    """A server handing back the previous page (and its cursor) again stops the walk."""
    fake = in_process("stripe", {"clock": NOW})
    fake.control.fault("repeat_page", "/v1/events", count=None)
    read = reader(fake, "stripe", tmp_path, "page_size = 20\n")
    with pytest.raises(PaginationLoop):
        list(registry.get("stripe").api.streams["events"].walk(read, None))  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("vendor", "stream", "object_id", "kind"),
    [
        ("shopify", "customers", "510", "customer"),
        ("stripe", "events", None, "customer"),
        ("zendesk", "tickets", "5", "ticket"),
        ("klaviyo", "profiles", None, "profile"),
        ("chatwoot", "conversations", "3", "conversation"),
    ],
)
def test_one_object_is_fetched_by_id(
    vendor: str, stream: str, object_id: str | None, kind: str, tmp_path: Path
) -> None:
    """Streams with a single-object endpoint read one object by its id (event-driven fetches)."""
    fake = in_process(vendor, {"clock": NOW})
    if object_id is None:  # Stripe: an event id; Klaviyo: a profile id
        collection = "events" if vendor == "stripe" else "profiles"
        object_id = next(
            r.key
            for r in fake.fake.store.rows(collection)
            if vendor != "stripe" or r.attrs["type"] == "customer.created"
        )
    read: Reader = reader(fake, vendor, tmp_path)
    page = registry.get(vendor).api.streams[stream].fetch(read, object_id)  # type: ignore[union-attr,misc]
    assert [r.kind for r in page.records] == [kind] and page.cursor is None
