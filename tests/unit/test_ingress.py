"""The ingress handler in process: status codes, JSON reasons, logs and what reaches the inbox."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs

from connectors import registry
from events.db import events, make_async_engine, make_engine
from events.inbox import Inbox
from events.ingress import Ingress
from events.migrate import upgrade
from events.publisher import Publisher
from events.settings import IngressSettings, Settings
from events.sources import Source

SECRET = "unit-secret"
NOW = 1_800_000_000.0
Client = httpx.AsyncClient


def run_ingress(
    tmp_path: Path,
    scenario: Callable[[Client, list[tuple[str, str]]], Awaitable[Any]],
    *,
    schema_extra: str | None = None,
    sources: dict[str, Source] | None = None,
    **ingress: Any,
) -> Any:
    """Run `scenario` against an Ingress on a fresh SQLite inbox; publishing is recorded.
    `schema_extra` is SQL run on the migrated database first (e.g. a trigger that refuses rows)."""
    url = f"sqlite:///{tmp_path}/unit.db"
    upgrade(url)
    if schema_extra is not None:
        setup = make_engine(url)
        with setup.begin() as conn:
            conn.exec_driver_sql(schema_extra)
        setup.dispose()
    published: list[tuple[str, str]] = []

    def send(batch: list[tuple[str, str]]) -> int:
        published.extend(batch)
        return len(batch)

    async def main() -> Any:
        settings = Settings(database_url=url, ingress=IngressSettings(**ingress))
        engine = make_async_engine(url)
        inbox, publisher = Inbox(engine), Publisher(send=send)
        await inbox.start()
        await publisher.start()
        configured = sources or {"shop": Source("shop", "shopify", (SECRET,))}
        app = Ingress(settings, configured, inbox, publisher, clock=lambda: NOW)
        try:
            async with Client(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                return await scenario(client, published)
        finally:
            await publisher.stop()
            await inbox.stop()
            await engine.dispose()

    return asyncio.run(main())


def stored(tmp_path: Path) -> int:
    engine = make_engine(f"sqlite:///{tmp_path}/unit.db")
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(events)).scalar_one()
    engine.dispose()
    return count


def sample() -> Any:
    return registry.get("shopify").sample(SECRET, NOW)


def test_accepts_stores_byte_exact_and_publishes_after_commit(tmp_path: Path) -> None:
    """A valid delivery is stored with its raw bytes and its id is published to the vendor queue."""
    req = sample()

    async def scenario(client: Client, published: list[tuple[str, str]]) -> Any:
        resp = await client.post("/webhooks/shop", content=req.body, headers=req.headers)
        await asyncio.sleep(0.05)
        return resp, list(published)

    resp, published = run_ingress(tmp_path, scenario)
    assert resp.status_code == 200
    body = resp.json()
    assert (body["accepted"], body["duplicates"]) == (1, 0)
    assert published == [(body["ids"][0], "shopify")]
    engine = make_engine(f"sqlite:///{tmp_path}/unit.db")
    with engine.connect() as conn:
        row = conn.execute(select(events)).one()
    engine.dispose()
    assert row.body == req.body
    assert (row.state, row.type, row.source, row.vendor) == ("accepted", "order.created", "shop", "shopify")
    assert row.headers["x-shopify-topic"] == "orders/create"


def test_duplicate_is_success_and_not_published(tmp_path: Path) -> None:
    """A redelivery answers 200 with duplicates=1 and publishes nothing more."""
    req = sample()

    async def scenario(client: Client, published: list[tuple[str, str]]) -> Any:
        first = await client.post("/webhooks/shop", content=req.body, headers=req.headers)
        second = await client.post("/webhooks/shop", content=req.body, headers=req.headers)
        await asyncio.sleep(0.05)
        return first, second, len(published)

    first, second, n_published = run_ingress(tmp_path, scenario)
    assert second.status_code == 200
    assert (second.json()["accepted"], second.json()["duplicates"]) == (0, 1)
    assert n_published == 1
    assert stored(tmp_path) == 1


def test_concurrent_copies_of_one_delivery_store_one_event(tmp_path: Path) -> None:
    """Copies racing in the same group-commit batch still yield one new event."""
    req = sample()

    async def scenario(client: Client, published: list[tuple[str, str]]) -> Any:
        responses = await asyncio.gather(
            *(client.post("/webhooks/shop", content=req.body, headers=req.headers) for _ in range(8))
        )
        return [r.json()["accepted"] for r in responses]

    accepted = run_ingress(tmp_path, scenario)
    assert sorted(accepted) == [0] * 7 + [1]
    assert stored(tmp_path) == 1


@pytest.mark.parametrize(
    ("mutate", "status", "code"),
    [
        (lambda r: r.headers.update({"X-Shopify-Hmac-Sha256": "bm9wZQ=="}), 401, "invalid_signature"),
        (lambda r: r.headers.pop("X-Shopify-Hmac-Sha256"), 401, "missing_signature"),
        (lambda r: r.headers.update({"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
        (lambda r: r.headers.pop("Content-Type"), 415, "unsupported_media_type"),
    ],
)
def test_refusals_answer_json_log_and_store_nothing(
    tmp_path: Path, mutate: Any, status: int, code: str
) -> None:
    """Each refusal has its status, a JSON {error, detail}, an ingress.rejected log line, no row."""
    req = sample()
    mutate(req)

    async def scenario(client: Client, published: list[tuple[str, str]]) -> Any:
        with capture_logs() as logs:
            resp = await client.post("/webhooks/shop", content=req.body, headers=req.headers)
        return resp, logs

    resp, logs = run_ingress(tmp_path, scenario)
    assert resp.status_code == status
    assert resp.json()["error"] == code and resp.json()["detail"]
    assert [e for e in logs if e["event"] == "ingress.rejected" and e["reason"] == code]
    assert stored(tmp_path) == 0


def test_body_limit_is_enforced_while_reading(tmp_path: Path) -> None:
    """A body over the limit is refused with 413 even when no Content-Length announces it."""
    req = sample()

    async def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 100

    async def scenario(client: Client, published: list[tuple[str, str]]) -> Any:
        headers = {k: v for k, v in req.headers.items() if k.lower() != "content-length"}
        return await client.post("/webhooks/shop", content=chunks(), headers=headers)

    resp = run_ingress(tmp_path, scenario, max_body_bytes=500)
    assert (resp.status_code, resp.json()["error"]) == (413, "too_large")
    assert stored(tmp_path) == 0


def test_unknown_source_is_404(tmp_path: Path) -> None:
    """A path naming no configured source answers 404 unknown_source."""
    req = sample()

    async def scenario(client: Client, published: list[tuple[str, str]]) -> Any:
        return await client.post("/webhooks/elsewhere", content=req.body, headers=req.headers)

    resp = run_ingress(tmp_path, scenario)
    assert (resp.status_code, resp.json()["error"]) == (404, "unknown_source")


def test_sheds_load_with_429_and_retry_after(tmp_path: Path) -> None:
    """Past max_pending waiting requests the ingress answers 429 + Retry-After before reading the body."""
    req = sample()

    async def scenario(client: Client, published: list[tuple[str, str]]) -> Any:
        return await client.post("/webhooks/shop", content=req.body, headers=req.headers)

    resp = run_ingress(tmp_path, scenario, max_pending=0)
    assert (resp.status_code, resp.json()["error"]) == (429, "overloaded")
    assert int(resp.headers["retry-after"]) > 0
    assert stored(tmp_path) == 0


def sample_with(**headers: str) -> Any:
    """A fresh Shopify sample with some headers replaced (they are not covered by the signature)."""
    req = sample()
    req.headers.update(headers)
    return req


def test_an_overlong_topic_is_refused_with_400_before_it_joins_a_batch(tmp_path: Path) -> None:
    """An unsigned header that would overflow its column is refused alone, with a reason; nothing stored."""
    poisoned = sample_with(**{"X-Shopify-Topic": "orders/" + "x" * 300})

    async def scenario(client: Client, published: list[tuple[str, str]]) -> Any:
        with capture_logs() as logs:
            resp = await client.post("/webhooks/shop", content=poisoned.body, headers=poisoned.headers)
        return resp, logs

    resp, logs = run_ingress(tmp_path, scenario)
    assert (resp.status_code, resp.json()["error"]) == (400, "invalid_type")
    assert [e for e in logs if e["event"] == "ingress.rejected" and e["reason"] == "invalid_type"]
    assert stored(tmp_path) == 0


def test_an_overlong_delivery_id_is_stored_by_its_hash_and_still_dedupes(tmp_path: Path) -> None:
    """A 2 KB event id is kept as its SHA-256, so the same delivery sent twice is one event."""
    req = sample_with(**{"X-Shopify-Event-Id": "e" * 2000})

    async def scenario(client: Client, published: list[tuple[str, str]]) -> Any:
        first = await client.post("/webhooks/shop", content=req.body, headers=req.headers)
        second = await client.post("/webhooks/shop", content=req.body, headers=req.headers)
        return first.json(), second.json()

    first, second = run_ingress(tmp_path, scenario)
    assert (first["accepted"], second["duplicates"]) == (1, 1)
    engine = make_engine(f"sqlite:///{tmp_path}/unit.db")
    with engine.connect() as conn:
        key = conn.execute(select(events.c.dedupe_key)).scalar_one()
    engine.dispose()
    assert key.startswith("sha256:") and len(key) == len("sha256:") + 64


REFUSE_POISON = """
CREATE TRIGGER refuse_poison BEFORE INSERT ON events WHEN NEW.dedupe_key LIKE '%poison%'
BEGIN SELECT RAISE(ABORT, 'poisoned row'); END
"""


def test_a_batch_the_database_refuses_fails_only_the_guilty_requests(tmp_path: Path) -> None:
    """60 concurrent deliveries share group commits; the 5 whose rows the database refuses get 400
    unstorable, the 55 others are stored and answered 200 — none of them sees an error."""
    requests = [
        sample_with(**{"X-Shopify-Event-Id": f"poison-{i}"}) if i % 12 == 0 else sample() for i in range(60)
    ]

    async def scenario(client: Client, published: list[tuple[str, str]]) -> Any:
        with capture_logs() as logs:
            responses = await asyncio.gather(
                *(client.post("/webhooks/shop", content=r.body, headers=r.headers) for r in requests)
            )
        return responses, logs

    responses, logs = run_ingress(tmp_path, scenario, schema_extra=REFUSE_POISON, writers=1)
    refused = [i for i, r in enumerate(responses) if r.status_code != 200]
    assert refused == [0, 12, 24, 36, 48]
    assert {responses[i].json()["error"] for i in refused} == {"unstorable"}
    assert stored(tmp_path) == 55
    assert any(e["event"] == "inbox.batch_refused" for e in logs)  # they really shared a batch


def test_a_repeated_signature_header_is_refused(tmp_path: Path) -> None:
    """Two X-Shopify-Hmac-Sha256 headers: 400 duplicate_header, whichever of them is valid."""
    req = sample()
    headers = [*req.headers.items(), ("X-Shopify-Hmac-Sha256", "Zm9yZ2Vk")]

    async def scenario(client: Client, published: list[tuple[str, str]]) -> Any:
        return await client.post("/webhooks/shop", content=req.body, headers=headers)

    resp = run_ingress(tmp_path, scenario)
    assert (resp.status_code, resp.json()["error"]) == (400, "duplicate_header")
    assert stored(tmp_path) == 0


def test_headers_over_the_limit_get_431(tmp_path: Path) -> None:
    """A 64 KB header is refused with 431 before anything is read or stored."""
    req = sample_with(**{"X-Padding": "p" * 65536})

    async def scenario(client: Client, published: list[tuple[str, str]]) -> Any:
        return await client.post("/webhooks/shop", content=req.body, headers=req.headers)

    resp = run_ingress(tmp_path, scenario)
    assert (resp.status_code, resp.json()["error"]) == (431, "headers_too_large")
    assert stored(tmp_path) == 0


@pytest.mark.parametrize("method", ["PUT", "DELETE", "GET", "PATCH"])
def test_a_wrong_method_gets_405_with_allow(tmp_path: Path, method: str) -> None:
    """Shopify has no GET handshake, so only POST is allowed, and the answer says so."""

    async def scenario(client: Client, published: list[tuple[str, str]]) -> Any:
        return await client.request(method, "/webhooks/shop")

    resp = run_ingress(tmp_path, scenario)
    assert (resp.status_code, resp.json()["error"]) == (405, "method_not_allowed")
    assert resp.headers["allow"] == "POST"


def test_a_shopify_delivery_without_its_topic_is_400(tmp_path: Path) -> None:
    """No X-Shopify-Topic: the event cannot be typed, so it is refused rather than stored as unknown."""
    req = sample()
    del req.headers["X-Shopify-Topic"]

    async def scenario(client: Client, published: list[tuple[str, str]]) -> Any:
        return await client.post("/webhooks/shop", content=req.body, headers=req.headers)

    resp = run_ingress(tmp_path, scenario)
    assert (resp.status_code, resp.json()["error"]) == (400, "missing_header")
    assert stored(tmp_path) == 0


@pytest.mark.parametrize(("guard", "accepted"), [(True, [1, 0]), (False, [1, 1])])
def test_the_replay_guard_takes_a_resent_body_for_a_duplicate(
    tmp_path: Path, guard: bool, accepted: list[int]
) -> None:
    """A captured Shopify delivery resent with a fresh X-Shopify-Event-Id (not covered by the
    signature) is a duplicate when the source guards replays, a new event when it does not."""
    first = sample()
    again = type(first)(body=first.body, headers={**first.headers, "X-Shopify-Event-Id": "a-fresh-id"})

    async def scenario(client: Client, published: list[tuple[str, str]]) -> Any:
        answers = []
        for req in (first, again):
            resp = await client.post("/webhooks/guarded", content=req.body, headers=req.headers)
            answers.append(resp.json()["accepted"])
        return answers

    source = Source("guarded", "shopify", (SECRET,), replay_guard=guard)
    assert run_ingress(tmp_path, scenario, sources={"guarded": source}) == accepted
