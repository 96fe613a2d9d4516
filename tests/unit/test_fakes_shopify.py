"""Fake Shopify Admin GraphQL: connections, cursors, search, single objects, cost points, THROTTLED."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fakes.process import InProcessFake, in_process
from tests.fakes.store import iso

NOW = 1_700_000_000
URL = "/admin/api/2025-01/graphql.json"
TOKEN = {"X-Shopify-Access-Token": "shpat_fake"}
ORDERS = """
query Orders($after: String, $q: String, $first: Int!) {
  orders(first: $first, after: $after, sortKey: UPDATED_AT, query: $q) {
    edges { cursor node { id updatedAt customer { email } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


@pytest.fixture
def shop() -> InProcessFake:
    return in_process("shopify", {"clock": NOW})


def ask(client: httpx.Client, query: str, **variables: Any) -> dict[str, Any]:
    response = client.post(URL, json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return dict(response.json())


def walk(client: httpx.Client, q: str, first: int = 100) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        orders = ask(client, ORDERS, after=after, q=q, first=first)["data"]["orders"]
        nodes += [edge["node"] for edge in orders["edges"]]
        if not orders["pageInfo"]["hasNextPage"]:
            return nodes
        after = orders["pageInfo"]["endCursor"]


def test_a_filtered_walk_returns_every_matching_order_once_in_updated_order(shop: InProcessFake) -> None:
    """updated_at:>= bound, sortKey UPDATED_AT: each order updated since the bound exactly once, ascending."""
    rows = shop.fake.store.rows("orders")
    bound = sorted(r.updated for r in rows)[len(rows) // 3]
    nodes = walk(shop.client(headers=TOKEN), f"updated_at:>='{iso(bound)}'", first=37)
    expected = {f"gid://shopify/Order/{r.id}" for r in rows if r.updated >= bound}
    assert [n["id"] for n in nodes if n["id"] in expected] == [n["id"] for n in nodes]
    assert sorted(n["id"] for n in nodes) == sorted(expected)
    assert [n["updatedAt"] for n in nodes] == sorted(n["updatedAt"] for n in nodes)


def test_a_change_between_pages_brings_the_order_again_at_the_end(shop: InProcessFake) -> None:
    """A keyset cursor never skips: an order changed mid-walk shows up a second time, newer."""
    first_id = min(shop.fake.store.rows("orders"), key=lambda r: (r.stream, r.id)).id
    shop.control.advance(10)
    shop.control.mutate(
        "orders", id=first_id, set={"email": "new@example.com"}, when={"path": URL, "after": 1}
    )
    nodes = walk(shop.client(headers=TOKEN), "", first=100)
    ids = [n["id"] for n in nodes]
    gid = f"gid://shopify/Order/{first_id}"
    assert ids.count(gid) == 2 and ids[0] == gid and ids[-1] == gid
    assert len(set(ids)) == 300


def test_out_of_order_updated_at_comes_back_older_than_the_bound(shop: InProcessFake) -> None:
    """An injected older updatedAt still appears in the next incremental query: clients must not regress."""
    client = shop.client(headers=TOKEN)
    watermark = max(n["updatedAt"] for n in walk(client, ""))
    (gid,) = shop.control.mutate("orders", id=1005, updated_at="2020-01-01T00:00:00Z")
    nodes = walk(client, f"updated_at:>='{watermark}'")  # >=: the watermark's own orders come again too
    assert nodes[-1] == {"id": gid, "updatedAt": "2020-01-01T00:00:00Z", "customer": nodes[-1]["customer"]}
    assert {n["updatedAt"] for n in nodes[:-1]} == {watermark}


def test_page_size_is_capped_at_250_and_cursors_are_checked(shop: InProcessFake) -> None:
    """first: 251 and a forged cursor are GraphQL errors (HTTP 200, no data)."""
    client = shop.client(headers=TOKEN)
    too_many = ask(client, ORDERS, first=251, q="", after=None)
    assert "250" in too_many["errors"][0]["message"] and "data" not in too_many
    forged = ask(client, ORDERS, first=10, q="", after="not-a-cursor")
    assert "Invalid cursor" in forged["errors"][0]["message"]


def test_single_order_by_id_and_deleted_orders(shop: InProcessFake) -> None:
    """order(id:) returns the order; deleted ones are null and absent from lists."""
    client = shop.client(headers=TOKEN)
    query = (
        '{ order(id: "gid://shopify/Order/1010") { id name totalPriceSet { shopMoney { currencyCode } } } }'
    )
    order = ask(client, query)["data"]["order"]
    assert order == {
        "id": "gid://shopify/Order/1010",
        "name": "#1010",
        "totalPriceSet": {"shopMoney": {"currencyCode": "USD"}},
    }
    shop.control.mutate("orders", id=1010, delete=True)
    assert ask(client, query)["data"]["order"] is None
    assert "gid://shopify/Order/1010" not in [n["id"] for n in walk(client, "")]


def test_unknown_fields_and_bad_tokens_are_refused(shop: InProcessFake) -> None:
    """A field outside the schema is a GraphQL error; a wrong token is 401 with Shopify's errors string."""
    errors = ask(shop.client(headers=TOKEN), "{ order(id: 1) { id colour } }")["errors"]
    assert errors == [{"message": "Field 'colour' doesn't exist on type 'Order'"}]
    response = shop.client(headers={"X-Shopify-Access-Token": "nope"}).post(URL, json={"query": "{ x }"})
    assert response.status_code == 401 and "Invalid API key or access token" in response.json()["errors"]


def test_cost_is_requested_up_front_and_refunded_to_the_actual(shop: InProcessFake) -> None:
    """orders(first: 250) with a nested object asks 2 + 250×2 points; the bucket keeps what was not used."""
    body = ask(shop.client(headers=TOKEN), ORDERS, first=250, q="updated_at:>='2099-01-01'", after=None)
    cost = body["extensions"]["cost"]
    assert (cost["requestedQueryCost"], cost["actualQueryCost"]) == (502, 2)
    assert cost["throttleStatus"] == {
        "maximumAvailable": 2000.0,
        "currentlyAvailable": 1998.0,
        "restoreRate": 100.0,
    }


@pytest.mark.parametrize("status", [200, 429])
def test_over_the_bucket_answers_throttled_and_early_retries_are_violations(status: int) -> None:
    """THROTTLED, actualQueryCost null, configured status; (requested − available)/rate later it passes."""
    shop = in_process("shopify", {"clock": NOW, "throttle_status": status, "limits": {"bucket_size": 600.0}})
    client = shop.client(headers=TOKEN)
    assert "data" in ask(client, ORDERS, first=250, q="", after=None)  # 502 of 600 points, all used
    response = client.post(URL, json={"query": ORDERS, "variables": {"first": 250, "q": ""}})
    body = response.json()
    assert response.status_code == status
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    cost = body["extensions"]["cost"]
    assert cost["actualQueryCost"] is None and cost["requestedQueryCost"] == 502
    wait = (502 - cost["throttleStatus"]["currentlyAvailable"]) / cost["throttleStatus"]["restoreRate"]
    client.post(URL, json={"query": ORDERS, "variables": {"first": 250, "q": ""}})  # did not wait
    assert shop.control.stats()["violations"] == 1
    shop.control.advance(wait)
    assert "data" in ask(client, ORDERS, first=250, q="", after=None)
    stats = shop.control.endpoint("POST /admin/api/{version}/graphql.json")
    assert (stats["throttled"], stats["violations"]) == (2, 1)


def test_a_query_over_the_single_query_maximum_is_refused() -> None:
    """More than max_query_cost points: MAX_COST_EXCEEDED, nothing debited."""
    shop = in_process("shopify", {"clock": NOW, "limits": {"max_query_cost": 300}})
    body = ask(shop.client(headers=TOKEN), ORDERS, first=250, q="", after=None)
    assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert shop.fake.bucket.available("shpat_fake", NOW) == 2000.0
