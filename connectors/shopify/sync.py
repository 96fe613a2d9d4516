"""Shopify syncs (apis.md §1): `orders` and `customers` through the Admin GraphQL API, by update time.

A walk asks `orders(first, after, sortKey: UPDATED_AT, query: "updated_at:>='<since>'")`: keyset pages
in update order, so a record changed during the walk comes again later in the same walk, newer. The
cursor is `{"since", "after": the endCursor reached, "seen": the newest updatedAt read}`; a finished
walk leaves `{"since": seen}`. The bound is inclusive (Shopify documents no inclusivity): the records
of that second come again and upsert as no-ops.

Each query is priced before it is sent (2 + first × node cost, Shopify's rule for connections) and
that is what the points budget debits; the answer's actualQueryCost and throttleStatus settle it
(connectors/shopify/client.py). Records carry `legacyResourceId`, the id webhooks use, so an order
or customer webhook's subject is that object at its `updated_at`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import AwareDatetime, BaseModel

from connectors.pagination import by_page_info, dig
from connectors.payloads import obj, parse_time, text
from connectors.shopify.client import ShopifyHooks
from connectors.streams import Api, Cursor, Page, Reader, Stream, Subject, convert, newest, read, stamp
from schemas.envelope import Envelope
from schemas.records import Customer, Money, Order, Record

API_VERSION = "2025-01"
PATH = "/admin/api/{version}/graphql.json"
VERSION = {"version": API_VERSION}
PAGE_MAX = 250
MAX_QUERY_COST = 1000
CONNECTION_COST = 2

QUERY = """query Sync($first: Int!, $after: String, $query: String) {
  %s(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {
    nodes { %s }
    pageInfo { hasNextPage endCursor }
  }
}"""
ONE = "query One($id: ID!) { %s(id: $id) { %s } }"


class _Money(BaseModel):
    amount: Decimal
    currencyCode: str


class _MoneyBag(BaseModel):
    shopMoney: _Money


class _Ref(BaseModel):
    legacyResourceId: str


class _Order(BaseModel):
    legacyResourceId: str
    name: str | None = None
    email: str | None = None
    createdAt: AwareDatetime | None = None
    updatedAt: AwareDatetime
    displayFinancialStatus: str | None = None
    totalPriceSet: _MoneyBag | None = None
    customer: _Ref | None = None


class _Customer(BaseModel):
    legacyResourceId: str
    email: str | None = None
    firstName: str | None = None
    lastName: str | None = None
    updatedAt: AwareDatetime


def order(node: Any) -> list[Record]:
    item = read(_Order, node)
    price = item.totalPriceSet.shopMoney if item.totalPriceSet else None
    return [
        Order(
            external_id=item.legacyResourceId,
            number=item.name,
            email=item.email,
            total=Money(amount=price.amount, currency=price.currencyCode) if price else None,
            financial_status=item.displayFinancialStatus.lower() if item.displayFinancialStatus else None,
            created_at=item.createdAt,
            updated_at=item.updatedAt,
            customer_id=item.customer.legacyResourceId if item.customer else None,
        )
    ]


def customer(node: Any) -> list[Record]:
    item = read(_Customer, node)
    name = " ".join(part for part in (item.firstName, item.lastName) if part) or None
    return [
        Customer(external_id=item.legacyResourceId, email=item.email, name=name, updated_at=item.updatedAt)
    ]


@dataclass(frozen=True)
class Collection:
    root: str  # the connection's field: orders, customers
    one: str  # the single-object field: order, customer
    gid_type: str
    fields: str
    node_cost: int  # the node object and the objects inside it, one point each
    default_size: int
    to_records: Callable[[Any], list[Record]]

    def walk(self, reader: Reader, cursor: Cursor | None) -> Iterator[Page]:
        state = cursor or {}
        since = state.get("since")
        seen = state.get("seen", since)
        first = reader.size(
            self.default_size, min(PAGE_MAX, (MAX_QUERY_COST - CONNECTION_COST) // self.node_cost)
        )
        query = QUERY % (self.root, self.fields)
        search = f"updated_at:>='{since}'" if since else None

        def fetch(after: str | None) -> Any:
            variables = {"first": first, "after": after, "query": search}
            cost = CONNECTION_COST + first * self.node_cost
            return reader.post(PATH, {"query": query, "variables": variables}, path_params=VERSION, cost=cost)

        for answer in by_page_info(fetch, ("data", self.root), start=state.get("after")):
            records, rejected = convert(
                dig(answer, "data", self.root, "nodes"), self.to_records, "legacyResourceId"
            )
            seen = newest(seen, [r.updated_at for r in records])
            info = dig(answer, "data", self.root, "pageInfo")
            following = {"since": since, "after": info.get("endCursor"), "seen": seen}
            yield Page(records, rejected, following if info.get("hasNextPage") else {"since": seen})

    def fetch(self, reader: Reader, object_id: str) -> Page:
        body = {
            "query": ONE % (self.one, self.fields),
            "variables": {"id": f"gid://shopify/{self.gid_type}/{object_id}"},
        }
        answer = reader.post(PATH, body, path_params=VERSION, cost=self.node_cost)
        node = dig(answer, "data", self.one)
        records, rejected = convert([node] if node else [], self.to_records, "legacyResourceId")
        return Page(records, rejected)


SUBJECT_STREAMS = {"order.": "orders", "customer.": "customers"}  # canonical type prefix → stream


def subjects(envelope: Envelope) -> tuple[Subject, ...]:
    data = obj(envelope.payload)
    object_id = text(data.get("id"))
    stream = next((s for prefix, s in SUBJECT_STREAMS.items() if envelope.type.startswith(prefix)), None)
    if stream is None or object_id is None:
        return ()
    return (Subject(stream, object_id, parse_time(data.get("updated_at"))),)


def since(moment: datetime) -> Cursor:
    return {"since": stamp(moment)}


ORDER_FIELDS = (
    "legacyResourceId name email createdAt updatedAt displayFinancialStatus "
    "totalPriceSet { shopMoney { amount currencyCode } } customer { legacyResourceId }"
)
CUSTOMER_FIELDS = "legacyResourceId email firstName lastName updatedAt"
ORDERS = Collection("orders", "order", "Order", ORDER_FIELDS, 4, 100, order)
CUSTOMERS = Collection("customers", "customer", "Customer", CUSTOMER_FIELDS, 1, 250, customer)

API = Api(
    headers=lambda token, user: {"X-Shopify-Access-Token": token},
    hooks=ShopifyHooks(),
    streams={c.root: Stream(c.root, walk=c.walk, rewind=since, fetch=c.fetch) for c in (ORDERS, CUSTOMERS)},
    subjects=subjects,
)
