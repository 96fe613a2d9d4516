"""Operations on a real stack (PostgreSQL, Redis, uvicorn, a prefork worker with beat): an SLA breach
raises exactly one alert event and one recovery, with their metrics; a dead-lettered event's task ends
failed; and the dashboard in a real browser (Debian's chromium through Playwright): log in, watch an
event arrive, see a source with a bad secret turn red, replay a dead letter and see it done, and
forms without a session or a CSRF token refused. Screenshots of each page go to tests/artifacts/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from connectors import registry
from connectors.base import SignedRequest, Signer
from events.db import events
from tests.conftest import need
from tests.integration.harness import Stack, wait_for
from tests.integration.test_operations import scrape, series

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAST = {"HOOKYARD_MONITOR__INTERVAL_S": "1", "HOOKYARD_MONITOR__COUNTS_FLUSH_S": "0.5"}


def alerts(stack: Stack) -> list[tuple[str, str]]:
    """(type, state) of the alert events, oldest first."""
    with stack.engine.connect() as conn:
        rows = conn.execute(
            select(events.c.type, events.c.state).where(events.c.source == "hookyard").order_by(events.c.id)
        )
        return [(t, s) for t, s in rows]


def bad_payment(stack: Stack) -> SignedRequest:
    """A correctly signed Stripe event whose currency no schema accepts: dead-lettered at once."""
    stripe = registry.get("stripe")
    assert isinstance(stripe, Signer)
    now = time.time()
    req = stripe.sample(stack.secrets["payments"], now)
    body = orjson.loads(req.body)
    body["data"]["object"]["currency"] = "dollars"
    return stripe.sign(orjson.dumps(body), req.headers, stack.secrets["payments"], now, {})


def test_an_sla_breach_raises_one_alert_and_one_recovery(pg_stack: Stack) -> None:
    """A 3 s gap target: silence breaches it once (an alert.sla_breached event, processed); events
    again recover it once (alert.recovered); events that keep flowing raise nothing more. The alert
    counter and the SLA gauge on /metrics follow."""
    pg_stack.env_extra.update(FAST)
    pg_stack.write_config(
        {"shop": "shopify"},
        extra={
            "shop": '[sources.shop.sla]\nmax_gap = "3s"\nbreach_after = 2\nrecover_after = 1\n'
            "[sources.shop.anomaly]\nenabled = false\n"
        },
    )
    pg_stack.start_web()
    pg_stack.start_worker(beat=True)
    before = scrape(f"{pg_stack.url}/metrics")
    breach = series("hookyard_alerts_total", source="shop", alert="sla", kind="max_gap", transition="breach")
    recovery = series(
        "hookyard_alerts_total", source="shop", alert="sla", kind="max_gap", transition="recovery"
    )
    assert before.get(breach, 0.0) == 0.0

    assert pg_stack.post("shop", pg_stack.sample("shop", "shopify")).status_code == 200
    wait_for(
        lambda: alerts(pg_stack) == [("alert.sla_breached", "done")], timeout=60, what="one breach, done"
    )
    gauge = series("hookyard_sla_breached", source="shop", target="max_gap")
    wait_for(lambda: scrape(f"{pg_stack.url}/metrics").get(gauge) == 1.0, timeout=30, what="gauge 1")

    def flowing() -> bool:
        assert pg_stack.post("shop", pg_stack.sample("shop", "shopify")).status_code == 200
        return len(alerts(pg_stack)) == 2

    wait_for(flowing, timeout=60, what="a recovery while events flow", interval=0.5)
    until = time.monotonic() + 5  # several more evaluations with events flowing: nothing new
    while time.monotonic() < until:
        assert pg_stack.post("shop", pg_stack.sample("shop", "shopify")).status_code == 200
        time.sleep(0.5)
    wait_for(lambda: all(state == "done" for _, state in alerts(pg_stack)), timeout=30, what="alerts done")
    assert alerts(pg_stack) == [("alert.sla_breached", "done"), ("alert.recovered", "done")]
    after = scrape(f"{pg_stack.url}/metrics")
    assert (after[breach], after[recovery]) == (1.0, 1.0)
    assert after[gauge] == 0.0
    assert after[series("hookyard_source_health_score", source="shop")] == 100.0
    with pg_stack.engine.connect() as conn:
        payloads = [p for (p,) in conn.execute(select(events.c.payload).where(events.c.source == "hookyard"))]
    assert [(p["source"], p["alert"], p["kind"], p["status"]) for p in payloads] == [
        ("shop", "sla", "max_gap", "breached"),
        ("shop", "sla", "max_gap", "recovered"),
    ]


def test_a_dead_letter_fails_its_task_and_is_not_redelivered(pg_stack: Stack) -> None:
    """The process task of a dead-lettered event ends in failure (Celery's log says it raised the
    expected DeadLettered), its message is acknowledged: the event stays dead with one attempt."""
    pg_stack.secrets["payments"] = "whsec_dGVzdHNlY3JldDEyMzQ1Njc4OTA="
    pg_stack.write_config({"payments": "stripe"})
    pg_stack.start_web()
    worker = pg_stack.start_worker(beat=True)
    assert pg_stack.post("payments", bad_payment(pg_stack)).status_code == 200
    wait_for(lambda: pg_stack.states() == {"dead": 1}, timeout=60, what="dead")
    wait_for(lambda: b"DeadLettered" in worker.log.read_bytes(), timeout=30, what="the task failure logged")
    lines = [orjson.loads(line) for line in worker.log.read_bytes().splitlines() if b"DeadLettered" in line]
    assert any("raised expected" in line["event"] for line in lines), lines
    time.sleep(4)  # longer than the relay's grace: a redelivered message would try it again
    with pg_stack.engine.connect() as conn:
        assert conn.execute(select(events.c.state, events.c.attempts)).one() == ("dead", 1)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, through Playwright (never a downloaded browser)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        need("playwright", exc)
    if not Path(CHROMIUM).exists():
        need("chromium", FileNotFoundError(CHROMIUM))
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def test_the_dashboard_in_a_real_browser(pg_stack: Stack, browser: Any) -> None:
    """Log in with a token; an event appears and turns done without a reload; a source whose sender
    has the wrong secret turns red; a dead letter is edited and replayed from the page and becomes
    done; a POST without the session or without the CSRF field is refused 403."""
    pg_stack.env_extra.update(FAST)
    pg_stack.secrets.update(payments="whsec_dGVzdHNlY3JldDEyMzQ1Njc4OTA=", broken="the-configured-secret")
    pg_stack.write_config({"shop": "shopify", "payments": "stripe", "broken": "github"})
    token = pg_stack.cli("tokens", "create", "--name", "e2e", "--scope", "write")["token"]
    pg_stack.start_web()
    pg_stack.start_worker(beat=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()

    page.goto(f"{pg_stack.url}/ui/")
    assert "/ui/login" in page.url
    shot(page, "login")
    page.fill("input[name=token]", "hy_wrong")
    page.click("button[type=submit]")
    assert "unknown or revoked token" in page.content()
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{pg_stack.url}/ui/")
    page.evaluate("window.__stayed = true")  # gone if the page reloads

    event_id = pg_stack.post("shop", pg_stack.sample("shop", "shopify")).json()["ids"][0]
    page.wait_for_selector(f'tr[data-event="{event_id}"] [data-state]:text("done")', timeout=30_000)

    wrong = registry.get("github").sample("not-the-configured-secret", time.time())
    for _ in range(5):
        assert pg_stack.post("broken", wrong).status_code == 401
    page.wait_for_selector('tr[data-source="broken"].level-bad', timeout=30_000)
    assert page.evaluate("window.__stayed === true")
    assert "level-bad" not in (page.get_attribute('tr[data-source="shop"]', "class") or "")
    shot(page, "overview")

    assert pg_stack.post("payments", bad_payment(pg_stack)).status_code == 200
    wait_for(lambda: pg_stack.states().get("dead") == 1, timeout=60, what="a dead letter")
    page.goto(f"{pg_stack.url}/ui/dead-letters?source=payments")
    shot(page, "dead-letters")
    page.click("td.id a")
    dead_url = page.url
    dead_id = dead_url.rsplit("/", 1)[1]
    page.fill("textarea[name=sets]", "data.object.currency=usd")
    page.click("form[action$='/edit'] button")
    page.wait_for_selector("p.notice")
    shot(page, "dead-letter")

    csrf = page.get_attribute("input[name=csrf]", "value")
    no_csrf = context.request.post(f"{dead_url}/replay", form={"x": "1"})
    assert no_csrf.status == 403 and no_csrf.json()["error"] == "csrf"
    stranger = browser.new_context()
    no_session = stranger.request.post(f"{dead_url}/replay", form={"csrf": csrf})
    assert no_session.status == 403 and no_session.json()["error"] == "no_session"
    stranger.close()
    assert pg_stack.states().get("dead") == 1

    page.click("form[action$='/replay'] button")
    page.wait_for_url(f"{pg_stack.url}/ui/events/{dead_id}*")
    page.wait_for_selector('[data-part^="event:"] [data-state]:text("done")', timeout=30_000)
    shot(page, "event")
    assert pg_stack.states().get("dead", 0) == 0

    for name in ("sources", "queues", "events", "sync", "rules"):
        page.goto(f"{pg_stack.url}/ui/{name}")
        assert page.locator("h1").count() == 1
        shot(page, name)
    assert "none yet" in page.content()  # rules: this stack has no rules, so no action runs
    assert httpx.get(f"{pg_stack.url}/ui/static/ui.css", timeout=5).status_code == 200
    context.close()
