"""Rules fire actions on the real stack: PostgreSQL, Redis, uvicorn, celery workers and the fake
Slack as a process. Each matching order posts exactly one message, whatever happens to deliveries,
messages and workers."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from standardwebhooks import Webhook

from events.db import action_runs
from tests.fakes.process import RunningFake
from tests.integration.actions_kit import (
    HOOK_PATH,
    big_orders,
    order,
    republish,
    runs,
    send_orders,
    with_rules,
)
from tests.integration.harness import HOOKYARD, Stack, wait_for

pytestmark = pytest.mark.integration

Fakes = Callable[..., RunningFake]
# An exchange's timeouts are a quarter of the lease: the stack's 5 s would make a slow answer on a
# loaded machine a timeout (and a retried post). Only a worker meant to die keeps the short lease.
LEASE = {"HOOKYARD_WORKER__LEASE_S": "20"}


@pytest.fixture
def slack(fake_vendor: Fakes) -> RunningFake:
    return fake_vendor("slack")


def live(stack: Stack, slack: RunningFake, rule: str | None = None) -> None:
    """The big-orders rule (or `rule`) beside the stack, posting to the fake Slack's webhook."""
    with_rules(stack, {"big-orders": rule or big_orders()}, {"SLACK_WEBHOOK_URL": slack.url + HOOK_PATH})


def texts(slack: RunningFake) -> list[str]:
    return [p["text"] for p in slack.control.posts()]


def test_a_redelivered_order_and_a_redelivered_message_post_once(pg_stack: Stack, slack: RunningFake) -> None:
    """The vendor sends the same delivery twice and the action's message is delivered again after it
    ran: one event, one run, one message; the second delivery of the message is skipped."""
    live(pg_stack, slack)
    pg_stack.start_web()
    worker = pg_stack.start_worker(**LEASE)
    request = order(pg_stack, "750.00")
    assert pg_stack.post("shop", request).json()["accepted"] == 1
    assert pg_stack.post("shop", request).json() == {"accepted": 0, "duplicates": 1, "ids": []}
    wait_for(lambda: [r.state for r in runs(pg_stack)] == ["done"], timeout=60, what="the run done")
    [run] = runs(pg_stack)
    republish(pg_stack, [run.id])
    wait_for(lambda: b'"action.skipped"' in worker.log.read_bytes(), timeout=60, what="the copy skipped")
    assert len(texts(slack)) == 1 and texts(slack)[0].endswith(": 750.00 USD")
    assert runs(pg_stack)[0].attempts == 1
    wait_for(
        lambda: {rule_metric(pg_stack, o) for o in ("matched", "fired")} == {1.0},
        timeout=30,
        what="the rule's metrics on /metrics, from the worker's processes",
    )


def rule_metric(stack: Stack, outcome: str, rule: str = "big-orders") -> float | None:
    """hookyard_rule_matches_total{rule, outcome} as the web app's /metrics adds it up."""
    text = httpx.get(f"{stack.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "hookyard_rule_matches_total" and sample.labels == {
                "rule": rule,
                "outcome": outcome,
            }:
                return float(sample.value)
    return None


def test_a_worker_killed_before_the_post_leaves_it_to_the_next(pg_stack: Stack, slack: RunningFake) -> None:
    """SIGKILL while the run is claimed but nothing was posted: its lease expires, the relay re-drives
    it, another worker posts it once."""
    live(pg_stack, slack)
    pg_stack.start_web()
    victim = pg_stack.start_worker(HOOKYARD_WORKER__FAULT_DELAY_BEFORE_ACTION_S="60")
    send_orders(pg_stack, ["900.00"])
    wait_for(lambda: [r.state for r in runs(pg_stack)] == ["running"], timeout=60, what="the run claimed")
    victim.kill(signal.SIGKILL)
    assert texts(slack) == []
    pg_stack.start_worker(**LEASE)
    wait_for(lambda: [r.state for r in runs(pg_stack)] == ["done"], timeout=90, what="the run done")
    assert len(texts(slack)) == 1
    assert runs(pg_stack)[0].attempts == 2  # the killed worker's claim, then the one that posted


def test_a_worker_killed_after_the_post_was_recorded_posts_nothing_more(
    pg_stack: Stack, slack: RunningFake
) -> None:
    """SIGKILL after the run was recorded done, before its message was acknowledged: the message comes
    back (here: published again, as the broker restores it) and the next worker skips it."""
    live(pg_stack, slack)
    pg_stack.start_web()
    victim = pg_stack.start_worker(**LEASE, HOOKYARD_WORKER__FAULT_DELAY_AFTER_ACTION_S="60")
    send_orders(pg_stack, ["900.00"])
    wait_for(lambda: [r.state for r in runs(pg_stack)] == ["done"], timeout=60, what="the run done")
    victim.kill(signal.SIGKILL)
    survivor = pg_stack.start_worker(**LEASE)
    republish(pg_stack, [runs(pg_stack)[0].id])
    wait_for(lambda: b'"action.skipped"' in survivor.log.read_bytes(), timeout=60, what="the copy skipped")
    assert len(texts(slack)) == 1
    assert (runs(pg_stack)[0].state, runs(pg_stack)[0].attempts) == ("done", 1)


def test_a_dead_action_replayed_posts_once(pg_stack: Stack, slack: RunningFake) -> None:
    """Slack answers 500 until the run is dead; `dlq list --kind actions` shows it, `dlq replay
    --kind actions` posts it once, a second replay and a replay of its event do nothing."""
    live(pg_stack, slack, big_orders(extra="[retry]\nmax_attempts = 2\nbase_s = 0.2\ncap_s = 0.5"))
    slack.control.fault("error", HOOK_PATH, status=500, code="internal_error", count=None)
    pg_stack.start_web()
    pg_stack.start_worker(**LEASE)
    [event_id] = send_orders(pg_stack, ["600.00"])
    wait_for(lambda: [r.state for r in runs(pg_stack)] == ["dead"], timeout=90, what="the run dead")
    listed = pg_stack.cli("dlq", "list", "--kind", "actions")
    run_id = runs(pg_stack)[0].id
    assert [(d["id"], d["rule"], d["error_class"]) for d in listed] == [
        (run_id, "big-orders", "TransientError")
    ]
    assert pg_stack.cli("dlq", "list") == []  # the default kind is still events: the event is done
    slack.control.clear_faults()
    assert pg_stack.cli("dlq", "replay", "--kind", "actions", run_id) == {"replayed": 1, "skipped": 0}
    wait_for(lambda: [r.state for r in runs(pg_stack)] == ["done"], timeout=60, what="the replay done")
    assert pg_stack.cli("dlq", "replay", "--kind", "actions", run_id)["planned"] == 0
    assert pg_stack.cli("dlq", "replay", event_id)["planned"] == 0
    assert len(texts(slack)) == 1
    assert runs(pg_stack)[0].replays == 1


@contextmanager
def receiver(failures: int) -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """An HTTP receiver that answers 503 `failures` times, then 200; it keeps every request."""
    seen: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((dict(self.headers), body))
            self.send_response(503 if len(seen) <= failures else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", seen
    finally:
        server.shutdown()
        server.server_close()


SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_http_post_carries_one_webhook_id_on_every_try_and_verifies(pg_stack: Stack) -> None:
    """Two 503s then 200: three signed tries, one webhook-id (the idempotency key), each verified by the
    standardwebhooks library; the body is the event with its records."""
    with receiver(failures=2) as (url, seen):
        rule = (
            'name = "outbound"\n[retry]\nbase_s = 0.2\ncap_s = 0.5\n[when]\ntypes = ["order.created"]\n'
            '[[actions]]\ntype = "http.post"\nurl = "${HOOK_URL}"\nsecret = "${HOOK_SECRET}"\n'
        )
        with_rules(pg_stack, {"outbound": rule}, {"HOOK_URL": url, "HOOK_SECRET": SECRET})
        pg_stack.start_web()
        pg_stack.start_worker(**LEASE)
        [event_id] = send_orders(pg_stack, ["10.00"])
        wait_for(lambda: [r.state for r in runs(pg_stack)] == ["done"], timeout=90, what="the post done")
    assert len(seen) == 3
    assert {headers["webhook-id"] for headers, _ in seen} == {f"{event_id}:outbound:0"}
    for headers, body in seen:
        payload = Webhook(SECRET).verify(body, headers)
        assert payload["id"] == event_id and payload["records"][0]["kind"] == "order"


def test_a_429_storm_delays_but_drops_nothing(pg_stack: Stack, slack: RunningFake) -> None:
    """Twelve big orders to one channel that takes one message a second: Slack answers 429 with
    Retry-After over and over, yet every order is posted exactly once, though each run may fail only
    twice on anything else."""
    live(pg_stack, slack, big_orders(extra="[retry]\nmax_attempts = 2"))
    pg_stack.start_web()
    pg_stack.start_worker(concurrency=2, **LEASE)
    totals = [f"{600 + i}.00" for i in range(12)]
    send_orders(pg_stack, totals)
    wait_for(lambda: [r.state for r in runs(pg_stack)] == ["done"] * 12, timeout=150, what="twelve runs done")
    assert sorted(t.rsplit(": ", 1)[1] for t in texts(slack)) == sorted(f"{t} USD" for t in totals)
    assert len(texts(slack)) == len(set(texts(slack))) == 12
    assert slack.control.stats()["throttled"] > 0
    assert max(r.throttled_tries for r in runs(pg_stack)) >= 2  # more 429s than attempts allowed


def test_a_disabled_rule_and_a_shadow_rule_fire_nothing(pg_stack: Stack, slack: RunningFake) -> None:
    """A rule turned off with `flags set` records nothing; a shadow rule records what it would have done
    and posts nothing; `rules list` counts the shadow matches."""
    with_rules(
        pg_stack,
        {"big-orders": big_orders(), "watching": big_orders("watching", extra='mode = "shadow"')},
        {"SLACK_WEBHOOK_URL": slack.url + HOOK_PATH},
    )
    subprocess.run(
        [*HOOKYARD, "flags", "set", "rule", "big-orders", "off"],
        cwd=pg_stack.root,
        env=pg_stack.env(),
        check=True,
    )
    pg_stack.start_web()
    pg_stack.start_worker(**LEASE)
    send_orders(pg_stack, ["700.00", "800.00", "100.00"])
    pg_stack.wait_all_done(3)
    assert [(r.rule, r.state) for r in runs(pg_stack)] == [("watching", "shadow"), ("watching", "shadow")]
    assert texts(slack) == []
    counts = {r["name"]: r["counts"] for r in pg_stack.cli("rules", "list")}
    assert counts["watching"]["shadow"] == 2 and counts["big-orders"]["matched"] == 0


@pytest.mark.parametrize("backend", ["pg_stack", "sqlite_stack"])
def test_a_throttle_is_exact_across_workers(
    backend: str, request: pytest.FixtureRequest, slack: RunningFake
) -> None:
    """At most two posts an hour for the shop, decided in the database (no Redis on SQLite): eight
    orders at once through two workers post two, the other six are recorded throttled."""
    stack: Stack = request.getfixturevalue(backend)
    throttle = '[throttle]\nkey = "{{ source }}"\nper = "1h"\nmax = 2\n'
    live(stack, slack, big_orders() + throttle)
    stack.start_web()
    stack.start_worker(**LEASE, concurrency=2)
    stack.start_worker(**LEASE, concurrency=2, beat=False)
    send_orders(stack, [f"{900 + i}.00" for i in range(8)])
    stack.wait_all_done(8, timeout=90)
    expected = ["done", "done"] + ["throttled"] * 6
    wait_for(lambda: sorted(r.state for r in runs(stack)) == expected, timeout=60, what="two runs done")
    assert len(texts(slack)) == 2
    with stack.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(action_runs)).scalar_one() == 8


def test_simulate_over_1000_stored_events_selects_what_live_evaluation_did(pg_stack: Stack) -> None:
    """A shadow rule over 1,000 orders with totals from 1 to 1,000: `rules simulate` matches exactly
    the events the workers recorded runs for."""
    with_rules(
        pg_stack,
        {"big-orders": big_orders(extra='mode = "shadow"')},
        {"SLACK_WEBHOOK_URL": "http://127.0.0.1:9/services/T0FAKE/B0FAKE/fakesecret"},
    )
    pg_stack.start_web()
    pg_stack.start_worker(**LEASE)
    send_orders(pg_stack, [f"{(i * 37) % 1000 + 1}.00" for i in range(1000)])
    pg_stack.wait_all_done(1000, timeout=170)
    recorded = {r.event_id for r in runs(pg_stack)}
    assert len(recorded) == 500  # totals 501…1000
    simulated = pg_stack.cli("rules", "simulate", "big-orders", "--since", "1d", "--sample", "1000")
    assert (simulated["scanned"], simulated["matched"]) == (1000, 500)
    assert {s["event_id"] for s in simulated["sample"]} == recorded


def test_rule_mistakes_stop_the_worker_and_a_missing_field_renders_empty(
    pg_stack: Stack, slack: RunningFake
) -> None:
    """A typo'd operator or a path into a list stops `hookyard worker` with exit 2 and one line; a
    template naming a field the order lacks posts with it empty and logs rules.template_missing."""
    for broken, line in (
        (big_orders().replace('op = "gt"', 'op = "greater"'), "when.all[0].op: unknown operator 'greater'"),
        (
            big_orders().replace("records.order.total.amount", "payload.line_items.0.price"),
            "goes into a list at '0'",
        ),
    ):
        live(pg_stack, slack, broken)
        result = subprocess.run(
            [*HOOKYARD, "worker"],
            cwd=pg_stack.root,
            env=pg_stack.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2 and line in result.stderr and result.stderr.count("\n") == 1
    live(pg_stack, slack, big_orders(text="Order for {{ payload.customer.nickname }}!"))
    pg_stack.start_web()
    worker = pg_stack.start_worker(**LEASE)
    send_orders(pg_stack, ["750.00"])
    wait_for(lambda: texts(slack) == ["Order for !"], timeout=60, what="the post")
    assert b'"rules.template_missing"' in worker.log.read_bytes()
