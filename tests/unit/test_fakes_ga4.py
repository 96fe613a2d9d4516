"""Fake GA4 Data API: runReport paging, aggregation, validation, property token quotas."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fakes.process import InProcessFake, in_process

NOW = 1_700_006_400  # 2023-11-15T00:00:00Z, an hour and day boundary
AUTH = {"Authorization": "Bearer ya29.fake"}
REPORT = "/v1beta/properties/123456:runReport"
BODY = {
    "dimensions": [{"name": "date"}, {"name": "country"}],
    "metrics": [{"name": "sessions"}],
    "dateRanges": [{"startDate": "6daysAgo", "endDate": "today"}],
}


@pytest.fixture
def ga4() -> InProcessFake:
    return in_process("ga4", {"clock": NOW})


def run(client: httpx.Client, **changes: Any) -> httpx.Response:
    return client.post(REPORT, json={**BODY, **changes})


def test_offset_paging_returns_every_row_once_with_the_seeded_sums(ga4: InProcessFake) -> None:
    """limit=8: offset += limit until rowCount; 7 days × 5 countries, each summed over devices."""
    client = ga4.client(headers=AUTH)
    rows, offset = [], 0
    while True:
        report = run(client, offset=offset, limit=8).json()
        rows += report.get("rows", [])
        offset += 8
        if offset >= report["rowCount"]:
            break
    assert report["rowCount"] == 35 and len(rows) == 35
    keys = [tuple(v["value"] for v in r["dimensionValues"]) for r in rows]
    assert len(set(keys)) == 35 and keys == sorted(keys)
    truth = sum(
        o["attrs"]["sessions"] for o in ga4.control.objects("rows") if o["attrs"]["date"] >= "20231109"
    )
    assert sum(int(r["metricValues"][0]["value"]) for r in rows) == truth


def test_several_date_ranges_add_the_date_range_dimension(ga4: InProcessFake) -> None:
    """Two ranges: a dateRange column named date_range_0 / date_range_1."""
    ranges = [{"startDate": "yesterday", "endDate": "yesterday"}, {"startDate": "today", "endDate": "today"}]
    report = run(ga4.client(headers=AUTH), dimensions=[{"name": "deviceCategory"}], dateRanges=ranges).json()
    assert report["dimensionHeaders"][-1] == {"name": "dateRange"}
    assert {r["dimensionValues"][-1]["value"] for r in report["rows"]} == {"date_range_0", "date_range_1"}


def test_a_settling_day_changes_the_report(ga4: InProcessFake) -> None:
    """Mutating a seeded row (late data) changes what the same report returns."""
    client = ga4.client(headers=AUTH)
    before = run(client, dimensions=[{"name": "date"}]).json()["rows"][-1]
    row = next(o for o in ga4.control.objects("rows") if o["attrs"]["date"] == "20231115")
    ga4.control.mutate("rows", id=row["id"], set={"sessions": row["attrs"]["sessions"] + 1000})
    after = run(client, dimensions=[{"name": "date"}]).json()["rows"][-1]
    assert int(after["metricValues"][0]["value"]) == int(before["metricValues"][0]["value"]) + 1000


def test_invalid_requests_are_invalid_argument_and_other_properties_denied(ga4: InProcessFake) -> None:
    """Unknown dimension, limit over 250000, five date ranges: 400; another property: 403."""
    client = ga4.client(headers=AUTH)
    for changes in (
        {"dimensions": [{"name": "colour"}]},
        {"limit": 250_001},
        {"dateRanges": BODY["dateRanges"] * 5},
    ):
        response = run(client, **changes)
        assert (response.status_code, response.json()["error"]["status"]) == (400, "INVALID_ARGUMENT"), (
            changes
        )
    denied = client.post("/v1beta/properties/999:runReport", json=BODY)
    assert (denied.status_code, denied.json()["error"]["status"]) == (403, "PERMISSION_DENIED")


def test_token_quotas_are_reported_and_exhaustion_is_resource_exhausted() -> None:
    """10 tokens an hour at 5 a report: the third is 429 RESOURCE_EXHAUSTED until the next hour."""
    ga4 = in_process("ga4", {"clock": NOW, "limits": {"tokens_per_hour": 10}})
    client = ga4.client(headers=AUTH)
    quota = run(client, returnPropertyQuota=True).json()["propertyQuota"]
    assert quota["tokensPerHour"] == {"consumed": 5, "remaining": 5}
    assert quota["tokensPerDay"] == {"consumed": 5, "remaining": 199_995}
    assert run(client).status_code == 200
    exhausted = run(client)
    assert exhausted.status_code == 429 and exhausted.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert "Retry-After" not in exhausted.headers
    run(client)  # hammering while exhausted
    ga4.control.advance(3600)
    assert run(client).status_code == 200
    stats = ga4.control.stats()
    assert (stats["throttled"], stats["violations"]) == (2, 1)
