"""Pagination helpers: pure generators over scripted pages, and their loop guards."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import httpx
import pytest

from connectors.pagination import (
    by_after_cursor,
    by_last_id,
    by_link_header,
    by_next_url,
    by_offset,
    by_page_info,
    by_page_number,
    next_link,
    paginate,
)
from schemas.errors import MalformedAnswer, PaginationLoop


class Pages:
    """Serves pages by cursor and records the cursors asked for."""

    def __init__(self, pages: dict[Any, Any]) -> None:
        self.pages = pages
        self.asked: list[Any] = []

    def __call__(self, cursor: Hashable) -> Any:
        self.asked.append(cursor)
        return self.pages[cursor]


def stripe(ids: list[str], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "has_more": has_more, "data": [{"id": i} for i in ids]}


def test_last_id_follows_has_more() -> None:
    """Stripe: starting_after is the last id of the page, until has_more is false."""
    pages = Pages({None: stripe(["evt_3", "evt_2"], True), "evt_2": stripe(["evt_1"], False)})
    assert [p["data"] for p in by_last_id(pages)] == [[{"id": "evt_3"}, {"id": "evt_2"}], [{"id": "evt_1"}]]
    assert pages.asked == [None, "evt_2"]


def test_last_id_repeating_cursor_is_a_loop() -> None:
    """A page whose last id was already followed raises instead of looping forever."""
    pages = Pages({None: stripe(["a", "b"], True), "b": stripe(["c", "b"], True)})
    walk = by_last_id(pages)
    next(walk), next(walk)
    with pytest.raises(PaginationLoop, match="'b' came back"):
        next(walk)


def test_has_more_without_items_is_a_loop() -> None:
    """has_more on an empty page can never make progress."""
    with pytest.raises(PaginationLoop, match="without items"):
        list(by_last_id(Pages({None: stripe([], True)})))


def zendesk(cursor: str, end: bool) -> dict[str, Any]:
    return {"after_cursor": cursor, "end_of_stream": end, "tickets": [{"id": cursor}]}


def test_after_cursor_until_end_of_stream() -> None:
    """Zendesk: follow after_cursor until end_of_stream; the last page still carries the cursor to keep."""
    pages = Pages({"c0": zendesk("c1", False), "c1": zendesk("c2", True)})
    walked = list(by_after_cursor(pages, "c0"))
    assert pages.asked == ["c0", "c1"] and walked[-1]["after_cursor"] == "c2"


def test_after_cursor_cycle_is_a_loop() -> None:
    """A→B→A is caught as well as A→A."""
    pages = Pages({"a": zendesk("b", False), "b": zendesk("a", False)})
    with pytest.raises(PaginationLoop):
        list(by_after_cursor(pages, "a"))
    assert pages.asked == ["a", "b"]


def test_next_url_until_null() -> None:
    """Klaviyo: links.next is the next page's full URL, null on the last."""
    first, second = "https://a.klaviyo.com/api/events", "https://a.klaviyo.com/api/events?page%5Bcursor%5D=x"
    pages = Pages(
        {first: {"data": [1], "links": {"next": second}}, second: {"data": [2], "links": {"next": None}}}
    )
    assert [p["data"] for p in by_next_url(pages, first)] == [[1], [2]]


def test_next_url_repeated_is_a_loop() -> None:
    """A links.next that points at the page itself raises."""
    url = "https://a.klaviyo.com/api/events"
    with pytest.raises(PaginationLoop):
        list(by_next_url(Pages({url: {"data": [], "links": {"next": url}}}), url))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            '<https://x.test/p?page=2>; rel="next", <https://x.test/p?page=9>; rel="last"',
            "https://x.test/p?page=2",
        ),
        (
            '<https://x.test/p?page=1>; rel="prev", <https://x.test/p?page=3>; rel=next',
            "https://x.test/p?page=3",
        ),
        ('<https://x.test/a,b>; title="x"; rel="prefetch next"', "https://x.test/a,b"),
        ('<https://x.test/p?page=1>; rel="prev"', None),
        ("", None),
        (None, None),
        ("garbage", None),
    ],
)
def test_next_link_parsing(header: str | None, expected: str | None) -> None:
    """RFC 8288: the target whose rel list includes next, quoted or not."""
    assert next_link(header) == expected


def test_link_header_pages() -> None:
    """Pages are answers with headers; the walk stops when no rel=next remains."""
    first, second = "https://x.test/items", "https://x.test/items?page=2"
    pages = Pages(
        {
            first: httpx.Response(200, headers={"link": f'<{second}>; rel="next"'}),
            second: httpx.Response(200, headers={"link": f'<{first}>; rel="prev"'}),
        }
    )
    assert len(list(by_link_header(pages, first))) == 2
    assert pages.asked == [first, second]


def shopify(end: str, more: bool) -> dict[str, Any]:
    return {"data": {"orders": {"nodes": [{"id": end}], "pageInfo": {"hasNextPage": more, "endCursor": end}}}}


def test_page_info_follows_end_cursor() -> None:
    """Shopify GraphQL: after ← pageInfo.endCursor while hasNextPage."""
    pages = Pages({None: shopify("e1", True), "e1": shopify("e2", False)})
    assert len(list(by_page_info(pages, ("data", "orders")))) == 2
    assert pages.asked == [None, "e1"]


def test_page_info_same_end_cursor_is_a_loop() -> None:
    """A connection that hands back the cursor it was given raises."""
    pages = Pages({None: shopify("e1", True), "e1": shopify("e1", True)})
    with pytest.raises(PaginationLoop):
        list(by_page_info(pages, ("data", "orders")))


def test_page_info_missing_is_malformed() -> None:
    """A page without the connection's pageInfo is a malformed answer, not the end."""
    with pytest.raises(MalformedAnswer, match="data.orders.pageInfo"):
        list(by_page_info(Pages({None: {"data": {}}}), ("data", "orders")))


def chatwoot(*ids: int) -> dict[str, Any]:
    return {"data": {"payload": [{"id": i} for i in ids]}}


def payload(page: Any) -> list[Any]:
    return page["data"]["payload"]


def test_page_numbers_until_empty() -> None:
    """Chatwoot: page 1, 2, … until a page has no items."""
    pages = Pages({1: chatwoot(1, 2), 2: chatwoot(3), 3: chatwoot()})
    assert [payload(p) for p in by_page_number(pages, payload)] == [[{"id": 1}, {"id": 2}], [{"id": 3}], []]


def test_a_server_ignoring_page_numbers_is_a_loop() -> None:
    """Page numbers never repeat; the same page coming back does, and raises."""
    pages = Pages({1: chatwoot(1, 2), 2: chatwoot(1, 2)})
    with pytest.raises(PaginationLoop, match="repeats an earlier page"):
        list(by_page_number(pages, payload))


def ga4(*values: int, total: int) -> dict[str, Any]:
    return {"rows": [{"metricValues": [{"value": str(v)}]} for v in values], "rowCount": total}


def test_offset_until_the_row_count() -> None:
    """GA4: offset += limit until offset reaches rowCount."""
    pages = Pages({0: ga4(1, 2, total=5), 2: ga4(3, 4, total=5), 4: ga4(5, total=5)})
    walked = list(by_offset(pages, 2, lambda p: p["rows"], lambda p: p["rowCount"]))
    assert len(walked) == 3 and pages.asked == [0, 2, 4]


def test_offset_ignored_is_a_loop() -> None:
    """A server that ignores the offset serves the same rows again: raised."""
    pages = Pages({0: ga4(1, 2, total=9), 2: ga4(1, 2, total=9)})
    with pytest.raises(PaginationLoop):
        list(by_offset(pages, 2, lambda p: p["rows"], lambda p: p["rowCount"]))


def test_max_pages_bounds_any_walk() -> None:
    """A walk that never ends without repeating still stops at max_pages."""

    def fetch(number: int) -> int:
        return number

    with pytest.raises(PaginationLoop, match="after 5 pages"):
        list(paginate(fetch, 0, lambda n, _: n + 1, max_pages=5))


def test_pages_are_yielded_before_the_next_is_fetched() -> None:
    """The caller can checkpoint a page before the next request goes out."""
    pages = Pages({None: stripe(["b"], True), "b": stripe(["a"], False)})
    walk = by_last_id(pages)
    next(walk)
    assert pages.asked == [None]
