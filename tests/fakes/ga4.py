"""Fake Google Analytics 4 Data API (apis.md §8): `POST /v1beta/properties/{id}:runReport` over
seeded daily rows (date × country × device): dimensions, metrics, up to 4 date ranges (dates,
`NdaysAgo`, `yesterday`, `today`), `offset`/`limit` paging with `rowCount`, `returnPropertyQuota`;
token quotas per property (hour, day) and per project (hour) answering 429 RESOURCE_EXHAUSTED."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.base import Fake, json_response
from tests.fakes.limits import FixedWindow
from tests.fakes.store import Record

DIMENSIONS = ("date", "country", "deviceCategory")
METRICS = {
    "sessions": "TYPE_INTEGER",
    "activeUsers": "TYPE_INTEGER",
    "screenPageViews": "TYPE_INTEGER",
    "eventCount": "TYPE_INTEGER",
    "totalRevenue": "TYPE_CURRENCY",
}
COUNTRIES = ("United States", "Germany", "France", "Japan", "Brazil")
DEVICES = ("desktop", "mobile", "tablet")
STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    429: "RESOURCE_EXHAUSTED",
}
STATUS |= {500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
DAYS_AGO = re.compile(r"^(\d+)daysAgo$")


class BadRequest(ValueError):
    """The report request does not validate (400 INVALID_ARGUMENT)."""


class Ga4Fake(Fake):
    name = "ga4"
    DEFAULTS = {
        "tokens": ["ya29.fake"],
        "property_id": "123456",
        "days": 30,  # seeded days, ending today
        "request_tokens": 5,  # quota tokens each report costs
        "limits": {"tokens_per_hour": 40_000, "tokens_per_day": 200_000, "project_tokens_per_hour": 14_000},
    }

    def setup(self) -> None:
        limits = self.config["limits"]
        self.quotas = {
            "tokensPerHour": FixedWindow("tokensPerHour", limits["tokens_per_hour"], 3600.0),
            "tokensPerDay": FixedWindow("tokensPerDay", limits["tokens_per_day"], 86400.0),
            "tokensPerProjectPerHour": FixedWindow(
                "tokensPerProjectPerHour", limits["project_tokens_per_hour"], 3600.0
            ),
        }

    def seed(self) -> None:
        today = self.today()
        for back in range(self.config["days"] - 1, -1, -1):
            day = datetime.combine(today - timedelta(days=back), datetime.min.time(), UTC).timestamp()
            for country in COUNTRIES:
                for device in DEVICES:
                    self.create("rows", day, day, day).attrs.update(country=country, deviceCategory=device)

    def today(self) -> date:
        return datetime.fromtimestamp(self.now(), UTC).date()

    def routes(self) -> list[Route]:
        return [self.route("POST", "/v1beta/properties/{property}:runReport", self.run_report)]

    def token(self, request: Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return value if scheme.lower() == "bearer" else None

    def error(self, status: int, message: str) -> Response:
        return json_response(
            {"error": {"code": status, "message": message, "status": STATUS.get(status, "UNKNOWN")}}, status
        )

    def unauthorized(self, request: Request, reason: str) -> Response:
        return self.error(401, "Request had invalid authentication credentials.")

    def error_response(self, request: Request, status: int, code: str) -> Response:
        return self.error(status, code or f"Injected {status}.")

    def make(self, record: Record) -> None:
        sessions = self.rng.randint(1, 500)
        record.attrs.update(
            date=datetime.fromtimestamp(record.created, UTC).strftime("%Y%m%d"),
            country=self.rng.choice(COUNTRIES),
            deviceCategory=self.rng.choice(DEVICES),
            sessions=sessions,
            activeUsers=self.rng.randint(1, sessions),
            screenPageViews=sessions * self.rng.randint(1, 6),
            eventCount=sessions * self.rng.randint(3, 12),
            totalRevenue=round(self.rng.uniform(0, 50) * sessions, 2),
        )

    def day(self, text: Any) -> date:
        text = str(text)
        if text in ("today", "yesterday"):
            return self.today() - timedelta(days=int(text == "yesterday"))
        if match := DAYS_AGO.match(text):
            return self.today() - timedelta(days=int(match[1]))
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise BadRequest(
                f"Invalid date {text!r}: use YYYY-MM-DD, NdaysAgo, yesterday or today."
            ) from None

    def parse(self, body: dict[str, Any]) -> tuple[list[str], list[str], list[tuple[date, date]], int, int]:
        dimensions = [str(d.get("name")) for d in body.get("dimensions", [])]
        metrics = [str(m.get("name")) for m in body.get("metrics", [])]
        for name in dimensions:
            if name not in DIMENSIONS:
                raise BadRequest(f"Field {name} is not a valid dimension.")
        for name in metrics:
            if name not in METRICS:
                raise BadRequest(f"Field {name} is not a valid metric.")
        if len(dimensions) > 9 or len(metrics) > 10 or not metrics:
            raise BadRequest("A report has 1 to 10 metrics and at most 9 dimensions.")
        ranges = [
            (self.day(r.get("startDate")), self.day(r.get("endDate"))) for r in body.get("dateRanges", [])
        ]
        if not 1 <= len(ranges) <= 4 or any(start > end for start, end in ranges):
            raise BadRequest("A report has 1 to 4 date ranges, each starting on or before its end.")
        offset, limit = int(body.get("offset", 0)), int(body.get("limit", 10_000))
        if offset < 0 or not 1 <= limit <= 250_000:
            raise BadRequest("offset must be >= 0 and limit from 1 to 250000.")
        return dimensions, metrics, ranges, offset, limit

    async def run_report(self, request: Request) -> Response:
        prop = self.config["property_id"]
        if request.path_params["property"] != prop:
            return self.error(403, "User does not have sufficient permissions for this property.")
        cost = self.config["request_tokens"]
        token = self.token(request) or ""
        checks = [(q, token if "Project" in name else prop, cost) for name, q in self.quotas.items()]
        verdict = self.admit(request, checks)
        if verdict.wait_s:
            return self.error(429, f"Exhausted {verdict.refused_by} quota for property {prop}.")
        try:
            body = json.loads(await request.body())
            dimensions, metrics, ranges, offset, limit = self.parse(body)
        except (ValueError, TypeError, AttributeError) as exc:
            return self.error(400, str(exc) if isinstance(exc, BadRequest) else "Invalid JSON payload.")
        rows = self.aggregate(dimensions, metrics, ranges)
        headers = [{"name": n} for n in dimensions] + ([{"name": "dateRange"}] if len(ranges) > 1 else [])
        report: dict[str, Any] = {
            "dimensionHeaders": headers,
            "metricHeaders": [{"name": n, "type": METRICS[n]} for n in metrics],
            "rowCount": len(rows),
            "metadata": {"currencyCode": "USD", "timeZone": "Etc/UTC"},
            "kind": "analyticsData#runReport",
        }
        page = rows[offset : offset + limit]
        if page:
            report["rows"] = [
                {
                    "dimensionValues": [{"value": v} for v in key],
                    "metricValues": [{"value": v} for v in values],
                }
                for key, values in page
            ]
        if body.get("returnPropertyQuota"):
            now = self.now()
            report["propertyQuota"] = {
                name: {
                    "consumed": cost,
                    "remaining": int(q.remaining(token if "Project" in name else prop, now)),
                }
                for name, q in self.quotas.items()
            }
        return json_response(report)

    def aggregate(
        self, dimensions: list[str], metrics: list[str], ranges: list[tuple[date, date]]
    ) -> list[tuple[tuple[str, ...], list[str]]]:
        """Sum the metrics of the seeded rows per requested dimension values, sorted by them."""
        sums: dict[tuple[str, ...], list[float]] = {}
        for index, (start, end) in enumerate(ranges):
            low, high = start.strftime("%Y%m%d"), end.strftime("%Y%m%d")
            for record in self.store.rows("rows"):
                if not low <= record.attrs["date"] <= high:
                    continue
                key = tuple(str(record.attrs[d]) for d in dimensions)
                key += (f"date_range_{index}",) if len(ranges) > 1 else ()
                totals = sums.setdefault(key, [0.0] * len(metrics))
                for i, name in enumerate(metrics):
                    totals[i] += record.attrs[name]
        return [
            (
                key,
                [
                    f"{v:.2f}" if METRICS[n] == "TYPE_CURRENCY" else str(int(v))
                    for n, v in zip(metrics, values, strict=True)
                ],
            )
            for key, values in sorted(sums.items())
        ]


FAKE = Ga4Fake
