"""Pagination helpers: pure generators over a `fetch(cursor) -> page` the caller supplies.

    pages = by_last_id(lambda after: client.call("GET", "/v1/events",
                                                 params={"limit": 100, "starting_after": after}).body)
    for page in pages: ...

| helper           | cursor in ← out                                   | vendors                     |
|------------------|---------------------------------------------------|-----------------------------|
| `by_last_id`     | `starting_after` ← last item's id, while has_more | Stripe                      |
| `by_after_cursor`| `cursor` ← `after_cursor`, until `end_of_stream`  | Zendesk incremental exports |
| `by_next_url`    | the page's `links.next` (a full URL)              | Klaviyo (JSON:API)          |
| `by_link_header` | the `Link: <…>; rel="next"` header                | GitHub-style APIs           |
| `by_page_info`   | `after` ← `pageInfo.endCursor`, while hasNextPage | Shopify GraphQL             |
| `by_page_number` | `page` + 1, until a page has no items             | Chatwoot                    |
| `by_offset`      | `offset` + `limit`, until `offset >= total`       | GA4 runReport               |

Every helper yields each page before it looks for the next, so the caller can checkpoint the cursor
of a page it has processed. **Loop guard**: a next cursor that was already followed (A→A, or A→B→A)
raises `PaginationLoop` instead of looping forever; page numbers and offsets never repeat, so there
the guard is a page identical to one already seen (a server ignoring `page`). `max_pages` bounds
the rest. A page that lacks the fields its style needs raises `MalformedAnswer`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import orjson

from schemas.errors import MalformedAnswer, PaginationLoop

C = TypeVar("C", bound=Hashable)
P = TypeVar("P")

MAX_PAGES = 100_000


def paginate(
    fetch: Callable[[C], P],
    first: C,
    next_of: Callable[[C, P], C | None],
    *,
    fingerprint: Callable[[P], str | None] | None = None,
    max_pages: int = MAX_PAGES,
) -> Iterator[P]:
    """The loop every style shares: fetch, yield, find the next cursor, guard against loops."""
    followed: set[Hashable] = {first}
    seen_pages: set[str] = set()
    cursor = first
    for count in range(1, max_pages + 1):
        page = fetch(cursor)
        mark = fingerprint(page) if fingerprint else None
        if mark is not None:
            if mark in seen_pages:
                raise PaginationLoop(f"page {cursor!r} repeats an earlier page: the server ignores paging")
            seen_pages.add(mark)
        yield page
        following = next_of(cursor, page)
        if following is None:
            return
        if following in followed:
            raise PaginationLoop(f"cursor {following!r} came back after {count} pages")
        followed.add(following)
        cursor = following
    raise PaginationLoop(f"still more after {max_pages} pages")


def dig(page: Any, *path: str) -> Any:
    """`page[a][b]…`, or MalformedAnswer naming the missing path."""
    value = page
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            raise MalformedAnswer(f"a page without {'.'.join(path)}")
        value = value[key]
    return value


def items_fingerprint(items: Sequence[Any]) -> str | None:
    """A digest of a page's items (None for an empty page, which ends the walk anyway)."""
    if not items:
        return None
    return hashlib.sha256(orjson.dumps(items, option=orjson.OPT_SORT_KEYS)).hexdigest()


def by_last_id(fetch: Callable[[str | None], Any], start: str | None = None) -> Iterator[Any]:
    """Stripe lists: `starting_after` is the last item's id while `has_more` (newest first)."""

    def next_of(_: str | None, page: Any) -> str | None:
        if not dig(page, "has_more"):
            return None
        data = dig(page, "data")
        if not data:
            raise PaginationLoop("has_more is true on a page without items")
        return str(dig(data[-1], "id"))

    return paginate(fetch, start, next_of)


def by_after_cursor(fetch: Callable[[str | None], Any], start: str | None = None) -> Iterator[Any]:
    """Zendesk cursor exports: follow `after_cursor` until `end_of_stream` (then persist it)."""

    def next_of(_: str | None, page: Any) -> str | None:
        if dig(page, "end_of_stream"):
            return None
        return str(dig(page, "after_cursor"))

    return paginate(fetch, start, next_of)


def by_next_url(fetch: Callable[[str], Any], first_url: str) -> Iterator[Any]:
    """JSON:API (Klaviyo): `links.next` is the full URL of the next page, null on the last."""

    def next_of(_: str, page: Any) -> str | None:
        following = dig(page, "links").get("next")
        return str(following) if following else None

    return paginate(fetch, first_url, next_of)


class HasHeaders(Protocol):
    @property
    def headers(self) -> Mapping[str, str]: ...


LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")
REL = re.compile(r"""rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.IGNORECASE)


def next_link(header: str | None) -> str | None:
    """The `rel="next"` target of an RFC 8288 `Link` header."""
    for match in LINK.finditer(header or ""):
        rel = REL.search(match.group(2))
        if rel and "next" in (rel.group(1) or rel.group(2) or "").lower().split():
            return match.group(1)
    return None


def by_link_header(fetch: Callable[[str], HasHeaders], first_url: str) -> Iterator[HasHeaders]:
    """APIs that put the next page in a `Link` header: pages are answers with headers."""
    return paginate(fetch, first_url, lambda _, page: next_link(page.headers.get("link")))


def by_page_info(
    fetch: Callable[[str | None], Any], connection: Sequence[str], start: str | None = None
) -> Iterator[Any]:
    """GraphQL connections (Shopify): `after` ← `pageInfo.endCursor` while `hasNextPage`;
    `connection` is the path to the connection, e.g. ("data", "orders")."""

    def next_of(_: str | None, page: Any) -> str | None:
        info = dig(page, *connection, "pageInfo")
        if not info.get("hasNextPage"):
            return None
        return str(dig(info, "endCursor"))

    return paginate(fetch, start, next_of)


def by_page_number(
    fetch: Callable[[int], Any], items: Callable[[Any], Sequence[Any]], first: int = 1
) -> Iterator[Any]:
    """Page numbers (Chatwoot): the next page until one comes back empty."""
    return paginate(
        fetch,
        first,
        lambda number, page: number + 1 if items(page) else None,
        fingerprint=lambda page: items_fingerprint(items(page)),
    )


def by_offset(
    fetch: Callable[[int], Any],
    limit: int,
    items: Callable[[Any], Sequence[Any]],
    total: Callable[[Any], int],
    start: int = 0,
) -> Iterator[Any]:
    """Offset and limit (GA4 runReport): `offset += limit` until it reaches the total row count."""
    if limit < 1:
        raise ValueError("limit must be at least 1")

    def next_of(offset: int, page: Any) -> int | None:
        following = offset + limit
        return following if items(page) and following < total(page) else None

    return paginate(fetch, start, next_of, fingerprint=lambda page: items_fingerprint(items(page)))
