"""Google Analytics 4 syncs (apis.md §8): one `report` stream, a daily report through the Data API.

`POST /v1beta/properties/{id}:runReport` with the date, country and device of every day in a window
ending today, paged by `offset += limit` until `rowCount`. Yesterday's and today's figures still
change while GA4 processes them, so every run re-pulls a trailing window (TRAILING_DAYS); a first
run, or `--full`, pulls FULL_DAYS. A row's id is the property, day and dimension values: a re-pulled
row replaces its earlier copy when its figures changed. The cursor is `{"start": the window's first
day}` (GA4's own `NdaysAgo` or a date), with `offset` while a report is half read. Each report debits
REPORT_COST quota tokens from the budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from connectors.pagination import by_offset
from connectors.streams import Api, Cursor, Page, Reader, Stream, convert, read
from schemas.records import Record, ReportRow

REPORT = "/v1beta/properties/{property}:runReport"
DIMENSIONS = ("date", "country", "deviceCategory")
METRICS = ("sessions", "activeUsers", "screenPageViews", "eventCount", "totalRevenue")
TRAILING_DAYS = 3
FULL_DAYS = 90
PAGE_DEFAULT, PAGE_MAX = 10_000, 250_000
REPORT_COST = 10.0


class _Value(BaseModel):
    value: str


class _Row(BaseModel):
    dimensionValues: list[_Value]
    metricValues: list[_Value]


def report_row(item: Any, account: str) -> list[Record]:
    row = read(_Row, item)
    dimensions = dict(zip(DIMENSIONS, (v.value for v in row.dimensionValues), strict=True))
    day = datetime.strptime(dimensions.pop("date"), "%Y%m%d").date()
    metrics: dict[str, Any] = dict(zip(METRICS, (v.value for v in row.metricValues), strict=True))
    key = ":".join([account, day.isoformat(), *dimensions.values()])
    return [ReportRow(external_id=key, day=day, dimensions=dimensions, metrics=metrics)]


def walk(reader: Reader, cursor: Cursor | None) -> Iterator[Page]:
    state = cursor or {}
    start = state.get("start") or f"{FULL_DAYS}daysAgo"
    limit = reader.size(PAGE_DEFAULT, PAGE_MAX)
    account = str(reader.account)

    def fetch(offset: int) -> Any:
        body = {
            "dimensions": [{"name": name} for name in DIMENSIONS],
            "metrics": [{"name": name} for name in METRICS],
            "dateRanges": [{"startDate": start, "endDate": "today"}],
            "offset": offset,
            "limit": limit,
        }
        return reader.post(REPORT, body, path_params={"property": account}, cost=REPORT_COST)

    offset = int(state.get("offset", 0))
    for answer in by_offset(fetch, limit, _rows, lambda a: int(a.get("rowCount", 0)), start=offset):
        records, rejected = convert(_rows(answer), lambda item: report_row(item, account))
        offset += limit
        more = bool(_rows(answer)) and offset < int(answer.get("rowCount", 0))
        yield Page(
            records,
            rejected,
            {"start": start, "offset": offset} if more else {"start": f"{TRAILING_DAYS}daysAgo"},
        )


def _rows(answer: Any) -> list[Any]:
    rows = answer.get("rows") if isinstance(answer, dict) else None
    return rows if isinstance(rows, list) else []


def rewind(moment: datetime) -> Cursor:
    return {"start": moment.astimezone(UTC).date().isoformat()}


API = Api(
    headers=lambda token, user: {"Authorization": f"Bearer {token}"},
    account="the GA4 property id",
    streams={"report": Stream("report", walk=walk, rewind=rewind)},
)
