"""Syncs on the real stack: PostgreSQL, Redis, two celery worker processes with beat, uvicorn, and
every fake vendor API as its own process. One system serves the module; the crash test has its own."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from connectors import registry
from connectors.keys import breaker_key
from events.db import events, records, sync_runs
from tests.conftest import PG_ADMIN_URL, REDIS_URL, need
from tests.fakes.process import RunningFake, start_fake
from tests.integration.conftest import require_postgres
from tests.integration.harness import HOOKYARD, Stack, postgres_database, wait_for
from tests.sync_kit import COLLECTIONS, source_text, stored, truth

pytestmark = pytest.mark.integration

FAKES: dict[str, dict[str, Any]] = {
    "shopify": {"counts": {"customers": 30, "orders": 150}},
    "stripe": {"counts": {"customers": 20, "charges": 40, "payment_intents": 15}},
    "zendesk": {"counts": {"tickets": 80}, "exclusion_s": 1, "limits": {"incremental_per_minute": 600}},
    "klaviyo": {"counts": {"profiles": 40, "events": 150}},
    "chatwoot": {"counts": {"conversations": 30, "messages": 120}},
    "ga4": {},
}
API: dict[str, str] = {
    "shopify": "page_size = 40\n",
    "stripe": "page_size = 40\n",
    "zendesk": "page_size = 30\nlimits = { incremental = { count = 600, period_s = 60 } }\n",
    "klaviyo": "page_size = 40\n",
    "chatwoot": "",
    "ga4": "",
}
SYNC_ENV = {
    "HOOKYARD_SYNC__LEASE_S": "4",
    "HOOKYARD_SYNC__SWEEP_INTERVAL_S": "1",
    "HOOKYARD_SYNC__REQUEUE_S": "5",
    "HOOKYARD_SYNC__BREAKER_FAILURES": "2",
    "HOOKYARD_SYNC__BREAKER_OPEN_S": "2",
}
SHOP_SECRET = "whsec_dGVzdA=="  # what sync_kit.source_text configures


@dataclass
class System:
    stack: Stack
    fakes: dict[str, RunningFake]
    redis: redis.Redis


def sources_toml(fakes: dict[str, RunningFake], every: str) -> str:
    text = ""
    for vendor, fake in fakes.items():
        streams = registry.get(vendor).api.streams  # type: ignore[union-attr]
        schedule = "".join(f'{stream} = "{every}"\n' for stream in streams)
        text += source_text(vendor, fake.url, name=vendor, api=API[vendor], sync=schedule)
    return text


def open_redis(db: int) -> tuple[str, redis.Redis]:
    url = f"{REDIS_URL}/{db}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        need("Redis", exc)
    return url, client


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    require_postgres()
    root = tmp_path_factory.mktemp("syncs")
    url, client = open_redis(13)
    fakes = {vendor: start_fake(vendor, config, log_dir=root) for vendor, config in FAKES.items()}
    try:
        with postgres_database(PG_ADMIN_URL) as database:
            stack = Stack(root=root, database_url=database, broker_url=url, secrets={}, env_extra=SYNC_ENV)
            (root / "hookyard.toml").write_text(sources_toml(fakes, "3s"))
            (root / "secrets.env").write_text("")
            try:
                stack.start_web()
                stack.start_worker(beat=True)
                stack.start_worker(beat=False)
                yield System(stack, fakes, client)
            finally:
                stack.close()
    finally:
        for fake in fakes.values():
            fake.stop()
        client.flushdb()
        client.close()


@pytest.fixture(autouse=True)
def logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "system" in request.fixturenames:
        print(request.getfixturevalue("system").stack.logs())


def hookyard(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """`hookyard …` against the stack, whatever its exit code."""
    return subprocess.run(
        [*HOOKYARD, *args],
        cwd=stack.root,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def metric(stack: Stack, name: str, **labels: str) -> float:
    """A sample of /metrics on the web app (every process of the stack summed), 0 when absent."""
    for family in text_string_to_metric_families(httpx.get(f"{stack.url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def data(stack: Stack, vendor: str, kind: str, external_id: str) -> dict[str, Any] | None:
    with stack.engine.connect() as conn:
        return conn.execute(
            select(records.c.data).where(
                records.c.vendor == vendor, records.c.kind == kind, records.c.external_id == external_id
            )
        ).scalar_one_or_none()


def converged(system: System) -> bool:
    """Every object of every fake is a record (Stripe: its customers; GA4: 30 days × 15 rows)."""
    engine = system.stack.engine
    for (vendor, _), (collection, kind) in COLLECTIONS.items():
        if set(stored(engine, vendor, kind)) != set(truth(system.fakes[vendor], collection)):
            return False
    customers = set(truth(system.fakes["stripe"], "customers"))
    return (
        customers <= set(stored(engine, "stripe", "customer"))
        and len(stored(engine, "ga4", "report_row")) == 450
    )


def run_done_since(stack: Stack, source: str, stream: str, since: datetime) -> bool:
    """A run of the stream that started after `since` has reached the present."""
    with stack.engine.connect() as conn:
        return bool(
            conn.execute(
                select(sync_runs.c.id).where(
                    sync_runs.c.source == source,
                    sync_runs.c.stream == stream,
                    sync_runs.c.started_at > since,
                    sync_runs.c.status == "done",
                )
            ).first()
        )


# (vendor, collection, record kind, field to set, its value, the record's field) – two objects each:
# one changed before the next runs, one while a walk is under way
CHANGES = [
    ("shopify", "orders", "order", (1010, 1020), {"email": "new@example.com"}, ("email", "new@example.com")),
    ("zendesk", "tickets", "ticket", (10, 20), {"subject": "Changed"}, ("subject", "Changed")),
    ("chatwoot", "conversations", "conversation", (5, 6), {"assignee_id": 999}, ("assignee_id", "999")),
    ("klaviyo", "profiles", "profile", (3, 4), {"email": "new@example.com"}, ("email", "new@example.com")),
]


def test_beat_keeps_every_stream_fresh_across_two_workers_with_no_violations(system: System) -> None:
    """Every configured stream converges to the fake's truth, then follows changes made between and
    during runs; no fake saw a request it had told us to hold back; no two runs of one stream ever
    overlapped; `sync status` shows every stream's cursor, lag and last run."""
    stack = system.stack
    wait_for(lambda: converged(system), timeout=120, what="every stream synced")
    for vendor, collection, _, (before, during), change, _ in CHANGES:
        control = system.fakes[vendor].control
        control.mutate(collection, **ref(control, vendor, collection, before), set=change)
        when = {"path": "*", "after": 1}
        control.mutate(collection, **ref(control, vendor, collection, during), set=change, when=when)
    stripe = system.fakes["stripe"].control
    changed_customer = stripe.objects("customers")[2]["id"]
    stripe.mutate("customers", key=changed_customer, set={"name": "Changed"})

    def followed() -> bool:
        for vendor, _, kind, _, _, (name, value) in CHANGES:
            found = [d for d in (stored_data(stack, vendor, kind)) if d.get(name) == value]
            if len(found) != 2:
                return False
        return (data(stack, "stripe", "customer", changed_customer) or {}).get("name") == "Changed"

    wait_for(followed, timeout=90, what="every change synced")
    for vendor, fake in system.fakes.items():
        assert fake.control.stats()["violations"] == 0, vendor
    with stack.engine.connect() as conn:
        history = conn.execute(select(sync_runs).order_by(sync_runs.c.started_at)).all()
    by_stream: dict[tuple[str, str], list[Any]] = {}
    for run in history:
        by_stream.setdefault((run.source, run.stream), []).append(run)
    for runs in by_stream.values():
        for earlier, later in zip(runs, runs[1:], strict=False):
            assert (
                earlier.finished_at is None
                or earlier.finished_at <= later.started_at
                or earlier.status == "abandoned"
            )
    status = {f"{r['source']}/{r['stream']}": r for r in stack.cli("sync", "status")}
    assert len(status) == 9
    for row in status.values():
        assert row["cursor"] is not None and row["lag_s"] is not None and row["last_run"] is not None


def ref(control: Any, vendor: str, collection: str, number: int) -> dict[str, Any]:
    """How a mutation names an object: by id, or (Klaviyo) by the key of the n-th object."""
    return {"key": control.objects(collection)[number]["id"]} if vendor == "klaviyo" else {"id": number}


def stored_data(stack: Stack, vendor: str, kind: str) -> list[dict[str, Any]]:
    with stack.engine.connect() as conn:
        return list(
            conn.execute(
                select(records.c.data).where(records.c.vendor == vendor, records.c.kind == kind)
            ).scalars()
        )


def send_order(stack: Stack, order_id: int, updated: datetime, email: str) -> str:
    """A signed orders/updated webhook for one order; its event id once processed."""
    shopify = registry.get("shopify")
    sample = shopify.sample(SHOP_SECRET, updated.timestamp())
    body = orjson.loads(sample.body)
    body.update(id=order_id, email=email, updated_at=updated.isoformat())
    headers = {**sample.headers, "X-Shopify-Topic": "orders/updated"}
    response = stack.post("shopify", shopify.sign(orjson.dumps(body), headers, SHOP_SECRET, 0))
    assert response.status_code == 200, response.text
    (event_id,) = response.json()["ids"]

    def done() -> bool:
        with stack.engine.connect() as conn:
            return conn.execute(select(events.c.state).where(events.c.id == event_id)).scalar_one() == "done"

    wait_for(done, timeout=30, what=f"webhook {event_id} processed")
    return event_id


def test_a_webhook_and_a_sync_in_either_order_keep_the_newest(system: System) -> None:
    """A webhook newer than the synced copy wins, and a later sync of an older version leaves it; a
    webhook older than the synced copy changes nothing, and a later sync of a newer version wins."""
    stack, shop = system.stack, system.fakes["shopify"].control
    wait_for(lambda: converged(system), timeout=120, what="every stream synced")
    orders = {o["id"].rsplit("/", 1)[-1]: o for o in shop.objects("orders")}
    x, y = "1031", "1032"
    x_at = datetime.fromtimestamp(orders[x]["updated"], UTC)
    send_order(stack, int(x), x_at + timedelta(hours=1), "hook@example.com")
    assert data(stack, "shopify", "order", x)["email"] == "hook@example.com"  # type: ignore[index]
    before = datetime.now(UTC)
    shop.mutate(
        "orders",
        id=int(x),
        set={"email": "older@example.com"},
        updated_at=(x_at + timedelta(minutes=30)).isoformat(),
    )
    y_at = datetime.fromtimestamp(orders[y]["updated"], UTC)
    send_order(stack, int(y), y_at - timedelta(hours=1), "stale-hook@example.com")
    assert data(stack, "shopify", "order", y)["email"] != "stale-hook@example.com"  # type: ignore[index]
    shop.mutate(
        "orders",
        id=int(y),
        set={"email": "newest@example.com"},
        updated_at=(y_at + timedelta(hours=2)).isoformat(),
    )
    wait_for(
        lambda: run_done_since(stack, "shopify", "orders", before + timedelta(seconds=1)),
        timeout=60,
        what="a sync after the changes",
    )
    wait_for(
        lambda: (data(stack, "shopify", "order", y) or {}).get("email") == "newest@example.com",
        timeout=30,
        what="y synced",
    )
    assert data(stack, "shopify", "order", x)["email"] == "hook@example.com"  # type: ignore[index]
    with stack.engine.connect() as conn:
        assert conn.execute(
            select(sync_runs.c.covered).where(sync_runs.c.stream == "orders", sync_runs.c.covered > 0)
        ).first()


def test_a_quarantined_item_is_listed_and_a_foreground_run_reports(system: System) -> None:
    """A ticket of the wrong type shows in `dlq list --kind quarantine` with its field error; a run from
    the command line (in the foreground) says how it went, or that another run holds the stream."""
    stack = system.stack
    system.fakes["zendesk"].control.mutate("tickets", id=30, set={"priority": 7})
    wait_for(
        lambda: stack.cli("dlq", "list", "--kind", "quarantine"), timeout=60, what="the ticket quarantined"
    )
    (item,) = stack.cli("dlq", "list", "--kind", "quarantine")
    assert (item["source"], item["item_key"], item["errors"][0]["loc"]) == ("zendesk", "30", "priority")
    assert stack.cli("dlq", "list") == []  # the default is unchanged: dead events only
    result = hookyard(stack, "sync", "run", "ga4", "report", "--json")
    assert result.returncode in (0, 1), result.stderr
    assert orjson.loads(result.stdout)["status"] in ("done", "busy")


def test_the_breaker_opens_during_an_outage_and_closes_after_it(system: System) -> None:
    """Zendesk answering 503 to everything opens its account's breaker (runs wait, a probe an
    interval); once it is back the breaker closes and the stream catches up."""
    stack, desk = system.stack, system.fakes["zendesk"].control
    key = breaker_key("zendesk", "zendesk")
    desk.fault("error", "/api/*", status=503, count=None)
    wait_for(lambda: system.redis.hget(key, "state") == b"open", timeout=60, what="the breaker open")
    wait_for(
        lambda: _row(stack, "zendesk/tickets")["last_run"]["status"] == "waiting",
        timeout=30,
        what="runs waiting",
    )
    desk.clear_faults()
    back = datetime.now(UTC)
    wait_for(
        lambda: not system.redis.exists(key) or system.redis.hget(key, "state") == b"closed",
        timeout=60,
        what="the breaker closed",
    )
    wait_for(
        lambda: run_done_since(stack, "zendesk", "tickets", back),
        timeout=60,
        what="a run done after the outage",
    )
    assert desk.stats()["violations"] == 0


def _row(stack: Stack, name: str) -> dict[str, Any]:
    return next(r for r in stack.cli("sync", "status") if f"{r['source']}/{r['stream']}" == name)


def test_an_expired_token_flags_the_source_and_its_syncs_stop(system: System) -> None:
    """A 401 flags the source: its beat ticks stop calling the vendor until the flag is cleared."""
    stack, ga = system.stack, system.fakes["ga4"].control
    ga.set_tokens([])
    wait_for(
        lambda: any(s["name"] == "ga4" and s["needs_reauth"] for s in stack.cli("sources", "list")),
        timeout=60,
        what="ga4 flagged",
    )
    calls, skipped = (
        ga.stats()["requests"],
        metric(stack, "hookyard_sync_runs_total", source="ga4", status="flagged"),
    )
    wait_for(
        lambda: metric(stack, "hookyard_sync_runs_total", source="ga4", status="flagged") >= skipped + 2,
        timeout=30,
        what="two ticks skipped",
    )
    assert ga.stats()["requests"] == calls
    ga.set_tokens(["ya29.fake"])
    assert hookyard(stack, "sources", "clear-flag", "ga4").returncode == 0
    cleared = datetime.now(UTC)
    wait_for(lambda: run_done_since(stack, "ga4", "report", cleared), timeout=60, what="ga4 syncing again")


def test_two_triggers_of_one_slot_make_one_run(system: System) -> None:
    """The same slot sent four times at once (a second beat, a redelivery) runs once."""
    stack = system.stack
    for _ in range(4):
        assert (
            hookyard(stack, "sync", "run", "shopify", "customers", "--queue", "--slot", "twice-1").returncode
            == 0
        )
    wait_for(lambda: _slot_runs(stack, "twice-1") == ["done"], timeout=60, what="the slot's one run")


def _slot_runs(stack: Stack, slot: str) -> list[str]:
    with stack.engine.connect() as conn:
        return list(conn.execute(select(sync_runs.c.status).where(sync_runs.c.slot == slot)).scalars())


def test_a_worker_killed_mid_run_resumes_with_no_gap_and_no_duplicate(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    """SIGKILL the worker while a slow walk is half done: the sweeper sends its slot again, a new
    worker takes the run over from its last checkpoint, and every order is stored exactly once."""
    fake = start_fake("shopify", {"counts": {"customers": 5, "orders": 120}}, log_dir=tmp_path)
    try:
        fake.control.fault("delay", "/admin/*", delay_s=0.4, count=None)
        stack = Stack(
            root=tmp_path, database_url=pg_url, broker_url=redis_url, secrets={}, env_extra=SYNC_ENV
        )
        text = source_text("shopify", fake.url, name="shop", api="page_size = 10\n", sync='orders = "1h"\n')
        (tmp_path / "hookyard.toml").write_text(text)
        (tmp_path / "secrets.env").write_text("")
        try:
            worker = stack.start_worker(beat=True)
            assert (
                hookyard(stack, "sync", "run", "shop", "orders", "--queue", "--slot", "crash-1").returncode
                == 0
            )

            def pages() -> int:
                with stack.engine.connect() as conn:
                    return (
                        conn.execute(select(sync_runs.c.pages).where(sync_runs.c.slot == "crash-1")).scalar()
                        or 0
                    )

            wait_for(lambda: pages() >= 3, timeout=60, what="three pages checkpointed")
            worker.kill(signal.SIGKILL)
            assert pages() < 12
            stack.start_worker(beat=True)
            wait_for(
                lambda: _slot_runs(stack, "crash-1") == ["done"],
                timeout=90,
                what="the run taken over and done",
            )
            orders = stored(stack.engine, "shopify", "order")
            assert set(orders) == set(truth(fake, "orders"))
            assert {version for _, version in orders.values()} == {1}  # no record written twice
            assert pages() == 12
        finally:
            stack.close()
    finally:
        fake.stop()
