"""Fake Shopify Admin GraphQL API (apis.md §1): `orders` and `customers` connections (first/after,
sortKey, reverse, `query:"updated_at:>='…'"`, opaque endCursor, at most 250 a page), `order(id:)` and
`customer(id:)`; a cost-point leaky bucket per token reported in `extensions.cost`, the THROTTLED
body (actualQueryCost null, HTTP status configurable) and MAX_COST_EXCEEDED."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.base import Fake, json_response
from tests.fakes.graphql import Field, GraphQLError, parse
from tests.fakes.limits import LeakyBucket
from tests.fakes.store import Record, decode_cursor, encode_cursor, iso, keyset, to_unix

SCHEMA: dict[str, dict[str, str | None]] = {
    "QueryRoot": {
        "orders": "OrderConnection",
        "customers": "CustomerConnection",
        "order": "Order",
        "customer": "Customer",
    },
    "Order": dict.fromkeys(
        ["id", "legacyResourceId", "name", "email", "createdAt", "updatedAt", "displayFinancialStatus"]
        + ["displayFulfillmentStatus"]
    )
    | {"totalPriceSet": "MoneyBag", "customer": "Customer"},
    "Customer": dict.fromkeys(
        ["id", "legacyResourceId", "email", "firstName", "lastName", "displayName", "createdAt", "updatedAt"]
        + ["numberOfOrders"]
    ),
    "MoneyBag": {"shopMoney": "MoneyV2", "presentmentMoney": "MoneyV2"},
    "MoneyV2": {"amount": None, "currencyCode": None},
    "PageInfo": dict.fromkeys(["hasNextPage", "hasPreviousPage", "startCursor", "endCursor"]),
    "OrderConnection": {"nodes": "Order", "edges": "OrderEdge", "pageInfo": "PageInfo"},
    "OrderEdge": {"cursor": None, "node": "Order"},
    "CustomerConnection": {"nodes": "Customer", "edges": "CustomerEdge", "pageInfo": "PageInfo"},
    "CustomerEdge": {"cursor": None, "node": "Customer"},
}
COLLECTIONS = {"orders": "Order", "customers": "Customer", "order": "Order", "customer": "Customer"}
CONNECTION_ARGS = {"first", "after", "last", "before", "sortKey", "reverse", "query"}
SEARCH = re.compile(r"\b(updated_at|created_at):(>=|<=|>|<)?\s*['\"]?([^'\"\s)]+)['\"]?")
COMPARE = {">=": float.__ge__, "<=": float.__le__, ">": float.__gt__, "<": float.__lt__, None: float.__eq__}
VERSION = re.compile(r"^(\d{4}-\d{2}|unstable)$")


class ShopifyFake(Fake):
    name = "shopify"
    DEFAULTS = {
        "tokens": ["shpat_fake"],
        "counts": {"customers": 50, "orders": 300},
        "page_max": 250,
        "throttle_status": 200,  # the HTTP status of a THROTTLED answer is UNCONFIRMED: 200 or 429
        "limits": {"bucket_size": 2000.0, "restore_rate": 100.0, "max_query_cost": 1000},
    }
    FIRST_IDS = {"orders": 1001, "customers": 501}

    def setup(self) -> None:
        limits = self.config["limits"]
        self.bucket = LeakyBucket("cost", limits["bucket_size"], limits["restore_rate"])

    def routes(self) -> list[Route]:
        return [self.route("POST", "/admin/api/{version}/graphql.json", self.graphql)]

    def token(self, request: Request) -> str | None:
        return request.headers.get("x-shopify-access-token")

    def unauthorized(self, request: Request, reason: str) -> Response:
        message = "[API] Invalid API key or access token (unrecognized login or wrong password)"
        return json_response({"errors": message}, 401)

    def error_response(self, request: Request, status: int, code: str) -> Response:
        headers = {"Retry-After": "1"} if status in (429, 503) else {}
        return json_response({"errors": code or f"Injected {status}"}, status, headers)

    def public_id(self, record: Record) -> Any:
        return f"gid://shopify/{COLLECTIONS[record.collection]}/{record.id}"

    # ----- data ---------------------------------------------------------------------------------
    def make(self, record: Record) -> None:
        if record.collection == "customers":
            first, last = self.rng.choice(["Ada", "Grace", "Alan", "Edsger"]), f"Doe{record.id}"
            record.attrs.update(email=f"buyer{record.id}@example.com", firstName=first, lastName=last)
        else:
            customers = self.store.rows("customers")
            record.attrs.update(
                email=f"order{record.id}@example.com",
                displayFinancialStatus=self.rng.choice(["PAID", "PENDING", "REFUNDED"]),
                displayFulfillmentStatus=self.rng.choice(["FULFILLED", "UNFULFILLED"]),
                amount=f"{self.rng.randint(100, 90_000) / 100:.2f}",
                customer=self.rng.choice(customers).id if customers else None,
            )

    def render(self, record: Record) -> dict[str, Any]:
        common = {
            "id": self.public_id(record),
            "legacyResourceId": str(record.id),
            "createdAt": iso(record.created),
            "updatedAt": iso(record.updated),
        }
        attrs = record.attrs
        if record.collection == "customers":
            orders = sum(1 for o in self.store.rows("orders") if o.attrs.get("customer") == record.id)
            name = f"{attrs.get('firstName')} {attrs.get('lastName')}"
            return {
                "__typename": "Customer",
                **common,
                **attrs,
                "displayName": name,
                "numberOfOrders": str(orders),
            }
        money = {"__typename": "MoneyV2", "amount": attrs.get("amount"), "currencyCode": "USD"}
        customer = self.store.get("customers", attrs.get("customer") or 0)
        return {
            "__typename": "Order",
            **common,
            **{k: v for k, v in attrs.items() if k not in ("amount", "customer")},
            "name": f"#{record.id}",
            "totalPriceSet": {"__typename": "MoneyBag", "shopMoney": money, "presentmentMoney": money},
            "customer": self.render(customer) if customer and not customer.deleted else None,
        }

    # ----- the endpoint -------------------------------------------------------------------------
    async def graphql(self, request: Request) -> Response:
        if not VERSION.match(request.path_params["version"]):
            return json_response({"errors": "Not Found"}, 404)
        try:
            body = json.loads(await request.body())
            fields = parse(body["query"], body.get("variables") or {})
            for root in fields:
                self.validate("QueryRoot", root)
        except (ValueError, KeyError, TypeError) as exc:
            if not isinstance(exc, GraphQLError):
                return json_response({"errors": "Bad Request: send JSON {query, variables}"}, 400)
            return json_response({"errors": [{"message": str(exc)}]})
        requested = sum(self.cost("QueryRoot", f, None) for f in fields)
        limit = self.config["limits"]["max_query_cost"]
        if requested > limit:
            message = f"Query cost is {requested}, which exceeds the single query max cost limit ({limit})."
            error = {
                "message": message,
                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": limit},
            }
            return json_response({"errors": [error]})
        token = self.token(request) or ""
        verdict = self.admit(request, [(self.bucket, token, requested)])
        if verdict.wait_s:
            error = {
                "message": "Throttled",
                "extensions": {
                    "code": "THROTTLED",
                    "documentation": "https://shopify.dev/api/usage/rate-limits",
                },
            }
            body = {"errors": [error], "extensions": {"cost": self.cost_report(token, requested, None)}}
            return json_response(body, self.config["throttle_status"])
        try:
            results = {f.alias: self.resolve(f) for f in fields}
        except GraphQLError as exc:
            self.bucket.give(token, self.now(), requested)
            return json_response({"errors": [{"message": str(exc)}]})
        data = {alias: value for alias, (value, _) in results.items()}
        actual = sum(cost for _, cost in results.values())
        self.bucket.give(token, self.now(), requested - actual)
        return json_response(
            {"data": data, "extensions": {"cost": self.cost_report(token, requested, actual)}}
        )

    def cost_report(self, token: str, requested: int, actual: int | None) -> dict[str, Any]:
        status = {
            "maximumAvailable": self.bucket.capacity,
            "currentlyAvailable": round(self.bucket.available(token, self.now()), 1),
            "restoreRate": self.bucket.restore_per_s,
        }
        return {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": status}

    def validate(self, type_name: str, field: Field) -> None:
        if field.name == "__typename":
            return
        if field.name not in SCHEMA[type_name]:
            raise GraphQLError(f"Field '{field.name}' doesn't exist on type '{type_name}'")
        target = SCHEMA[type_name][field.name]
        if target is None and field.selections:
            raise GraphQLError(f"Selections can't be made on scalars (field '{field.name}')")
        if target is not None and not field.selections:
            raise GraphQLError(f"Field must have selections (field '{field.name}' returns {target})")
        for child in field.selections:
            self.validate(target or "", child)

    def cost(self, type_name: str, field: Field, count: int | None) -> int:
        """Objects cost 1, scalars 0; a connection 2 + items × node cost (`count` items, else `first`)."""
        target = SCHEMA[type_name].get(field.name)
        if target is None:
            return 0
        if target.endswith("Connection"):
            items = count if count is not None else int(field.args.get("first") or 0)
            node_type = target.removesuffix("Connection")
            nodes = [f for f in field.selections if f.name == "nodes"]
            nodes += [
                g for f in field.selections if f.name == "edges" for g in f.selections if g.name == "node"
            ]
            per_node = max((1 + self.children_cost(node_type, n) for n in nodes), default=1)
            return 2 + items * per_node
        return 1 + self.children_cost(target, field)

    def children_cost(self, type_name: str, field: Field) -> int:
        return sum(self.cost(type_name, child, None) for child in field.selections)

    def resolve(self, field: Field) -> tuple[Any, int]:
        if field.name == "__typename":
            return "QueryRoot", 0
        if field.name in ("order", "customer"):
            gid = str(field.args.get("id", ""))
            found = (
                self.store.get(f"{field.name}s", int(gid.rsplit("/", 1)[-1]))
                if gid.split("/")[-1].isdigit()
                else None
            )
            value = self.render(found) if found and not found.deleted else None
            return project(value, field.selections), self.cost("QueryRoot", field, None)
        page, count = self.connection(field)
        return project(page, field.selections), self.cost("QueryRoot", field, count)

    def connection(self, field: Field) -> tuple[dict[str, Any], int]:
        args = field.args
        unknown = set(args) - CONNECTION_ARGS
        if unknown:
            raise GraphQLError(f"Field '{field.name}' doesn't accept argument '{sorted(unknown)[0]}'")
        if "last" in args or "before" in args:
            raise GraphQLError("the fake pages forward only: use first/after")
        first = args.get("first")
        if not isinstance(first, int) or not 0 <= first <= self.config["page_max"]:
            raise GraphQLError(f"first must be an integer from 0 to {self.config['page_max']}")
        sort = args.get("sortKey", "ID")
        if sort not in ("ID", "UPDATED_AT", "CREATED_AT"):
            raise GraphQLError(f"Argument 'sortKey' on Field '{field.name}' has an invalid value ({sort})")

        def position(r: Record) -> tuple[float, int]:
            return ({"ID": 0.0, "UPDATED_AT": r.stream, "CREATED_AT": r.created}[sort], r.id)

        after = None
        if args.get("after") is not None:
            cursor = decode_cursor(str(args["after"]))
            if cursor is None or "last_id" not in cursor:
                raise GraphQLError(f"Invalid cursor for field '{field.name}'")
            after = (float(cursor["last_value"]), int(cursor["last_id"]))
        rows = search(self.store.rows(field.name), str(args.get("query") or ""))
        page, more = keyset(rows, position, after, first, descending=bool(args.get("reverse")))
        cursors = [encode_cursor({"last_id": r.id, "last_value": position(r)[0]}) for r in page]
        nodes = [self.render(r) for r in page]
        type_name = COLLECTIONS[field.name]
        value = {
            "__typename": f"{type_name}Connection",
            "nodes": nodes,
            "edges": [
                {"__typename": f"{type_name}Edge", "cursor": c, "node": n}
                for c, n in zip(cursors, nodes, strict=True)
            ],
            "pageInfo": {
                "__typename": "PageInfo",
                "hasNextPage": more,
                "hasPreviousPage": after is not None,
                "startCursor": cursors[0] if cursors else None,
                "endCursor": cursors[-1] if cursors else None,
            },
        }
        return value, len(page)


def search(rows: list[Record], query: str) -> list[Record]:
    """Apply the `updated_at` / `created_at` terms of a search query; like Shopify, ignore the rest
    (and terms whose value is not a time). `updated_at` is the record's feed position (store.py)."""
    tests = []
    for name, op, value in SEARCH.findall(query):
        try:
            bound = to_unix(value)
        except ValueError:
            continue
        tests.append((name, COMPARE[op or None], bound))
    return [
        r
        for r in rows
        if all(check(r.stream if name == "updated_at" else r.created, bound) for name, check, bound in tests)
    ]


def project(value: Any, selections: list[Field]) -> Any:
    """Keep the selected fields of a resolved value, under their aliases."""
    if value is None:
        return None
    if isinstance(value, list):
        return [project(item, selections) for item in value]
    return {
        f.alias: project(value[f.name], f.selections) if f.selections else value[f.name] for f in selections
    }


FAKE = ShopifyFake
