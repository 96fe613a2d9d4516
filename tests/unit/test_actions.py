"""Running recorded actions: one try each, outcomes fenced, retries in the database, dead letters
replayable (SQLite; Slack in-process or behind httpx.MockTransport)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, select, update
from standardwebhooks import Webhook

from events import runs
from events.db import action_runs, event_tags, utcnow
from events.dlq import Filters
from tests.fakes.process import in_process
from tests.helpers import FakeClock
from tests.unit.actions_kit import SECRET, SLACK, TAG, WEBHOOK, Rig, rule
from workers import actions
from workers.actions import Outcome

HTTP = '[[actions]]\ntype = "http.post"\nurl = "http://receiver.test/hook"\nsecret = "${HOOK_SECRET}"\n'


@pytest.fixture
def rig(engine: Engine, tmp_path: Path) -> Iterator[Rig]:
    yield Rig(engine, tmp_path / "rules", FakeClock(utcnow()))


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text="ok")


def run(rig: Rig, ctx: actions.ActionContext, run_id: str | None = None) -> Outcome:
    target = run_id or rig.runs()[0].id
    return actions.run_many(rig.engine, [target], ctx)[target]


def test_a_slack_webhook_posts_once_however_often_the_run_is_delivered(rig: Rig) -> None:
    """The run is done after one post; a second delivery of its id is skipped and posts nothing."""
    rig.write("big", rule("big", SLACK))
    rig.process()
    posted: list[Any] = []

    def slack(request: httpx.Request) -> httpx.Response:
        posted.append((str(request.url), orjson.loads(request.content)))
        return ok(request)

    ctx = rig.action_context(slack)
    assert run(rig, ctx) == Outcome.DONE
    assert run(rig, ctx) == Outcome.SKIPPED
    assert posted == [(WEBHOOK, {"text": "Order 1"})]
    done = rig.runs()[0]
    assert (done.state, done.attempts, done.result) == ("done", 1, {"status": 200})
    assert [h["outcome"] for h in done.history] == ["done"]


def test_chat_post_message_waits_out_slack_rate_limit_without_using_an_attempt(rig: Rig) -> None:
    """Two posts to one channel in a second: the second gets 429 + Retry-After, waits that long in the
    database and uses up no attempt (even with max_attempts = 1); then it is posted."""
    slack = in_process("slack", {"clock": 1_700_000_000})
    chat = (
        '[[actions]]\ntype = "slack.post"\ntoken = "xoxb-fake"\nchannel = "alerts"\n'
        f'api_url = "{slack.url}/api"\ntext = "Order {{{{ records.order.external_id }}}}"\n'
    )
    rig.write("chat", rule("chat", chat, extra="[retry]\nmax_attempts = 1"))
    rig.process()
    rig.process()
    first, second = (r.id for r in rig.runs())
    ctx = actions.ActionContext(
        rules=rig.rules, lease_s=30, http=httpx.Client(transport=slack.transport), clock=rig.clock
    )
    assert run(rig, ctx, first) == Outcome.DONE
    assert run(rig, ctx, second) == Outcome.RETRY
    waiting = next(r for r in rig.runs() if r.id == second)
    assert (waiting.state, waiting.throttled_tries, waiting.error_class) == ("retry", 1, "Throttled")
    assert (waiting.available_at - rig.clock.now).total_seconds() >= 1
    slack.control.advance(2)
    rig.clock.advance(2)
    assert run(rig, ctx, second) == Outcome.DONE
    assert [p["text"] for p in slack.control.posts()] == ["Order 1", "Order 1"]
    assert [r.result["channel"] for r in rig.runs()] == ["C0ALERTS", "C0ALERTS"]


def test_http_post_signs_every_try_with_the_same_webhook_id(rig: Rig) -> None:
    """A 503 then a 200: both tries carry webhook-id = the idempotency key, each verifies with the
    standardwebhooks library, and the body is the event with its records."""
    rig.write("out", rule("out", HTTP))
    event_id = rig.process()
    seen: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503 if len(seen) == 1 else 204)

    ctx = rig.action_context(receiver)
    assert run(rig, ctx) == Outcome.RETRY
    rig.clock.advance(2)
    assert run(rig, ctx) == Outcome.DONE
    ids = {r.headers["webhook-id"] for r in seen}
    assert ids == {f"{event_id}:out:0"}
    for request in seen:
        body = Webhook(SECRET).verify(request.content, dict(request.headers))
        assert body["id"] == event_id and [r["kind"] for r in body["records"]] == ["order", "customer"]
    assert rig.runs()[0].result == {"status": 204, "webhook_id": f"{event_id}:out:0"}


def test_event_tag_writes_its_tags_with_the_done(rig: Rig) -> None:
    """Tags land in event_tags in the transaction that records the run done (the event's own, so no
    message is published); an empty tag is left out; a delivery of the run's id does nothing."""
    rig.write("tagger", rule("tagger", TAG.replace('"big", ', '"big", "{{ payload.nope }}", ')))
    event_id = rig.process()
    assert rig.published == [] and rig.runs()[0].state == "done"
    assert run(rig, rig.action_context(ok)) == Outcome.SKIPPED
    with rig.engine.connect() as conn:
        assert sorted(conn.execute(select(event_tags.c.event_id, event_tags.c.tag))) == [
            (event_id, "big"),
            (event_id, "shop"),
        ]


def test_sync_trigger_asks_the_sync_engine_by_name(rig: Rig) -> None:
    """sync.trigger hands source, stream, object id and its idempotency key to the sync task."""
    fetch = (
        '[[actions]]\ntype = "sync.trigger"\nsource = "shop"\nobject = "orders"\n'
        'id = "{{ records.order.external_id }}"\n'
    )
    rig.write("fetch", rule("fetch", fetch))
    event_id = rig.process()
    asked: list[tuple[Any, ...]] = []
    ctx = rig.action_context(ok, trigger_sync=lambda *args: asked.append(args))
    assert run(rig, ctx) == Outcome.DONE
    assert asked == [("shop", "orders", "1", f"{event_id}:fetch:0")]


def test_a_failing_action_becomes_a_dead_letter_and_a_replay_runs_it_once(rig: Rig) -> None:
    """500s until max_attempts: dead with traceback and every try; listed as a dead action; a replay
    gives a fresh budget and posts once; replaying again finds nothing dead."""
    rig.write("big", rule("big", SLACK, extra="[retry]\nmax_attempts = 2\nbase_s = 1"))
    rig.process()
    down = rig.action_context(lambda request: httpx.Response(500, text="internal_error"))
    assert run(rig, down) == Outcome.RETRY
    rig.clock.advance(5)
    assert run(rig, down) == Outcome.DEAD
    dead = rig.runs()[0]
    assert (dead.state, dead.attempts, dead.error_class) == ("dead", 2, "TransientError")
    assert "Traceback" in dead.traceback and [h["outcome"] for h in dead.history] == ["retry", "dead"]
    with rig.engine.connect() as conn:
        listed = runs.find(conn, Filters())
        assert [(r["id"], r["rule"], r["action_type"]) for r in listed] == [(dead.id, "big", "slack.post")]
        assert runs.plan(conn, Filters(task="http.post")) == []
    with rig.engine.begin() as conn:
        assert runs.replay_one(conn, dead.id, rig.clock.now)
        assert not runs.replay_one(conn, dead.id, rig.clock.now)
    posted: list[bytes] = []
    assert run(rig, rig.action_context(lambda r: posted.append(r.content) or ok(r))) == Outcome.DONE
    replayed = rig.runs()[0]
    assert (replayed.state, replayed.replays, len(posted)) == ("done", 1, 1)
    with rig.engine.connect() as conn:
        assert runs.find(conn, Filters()) == []


def test_a_run_whose_rule_is_gone_is_dead_and_comes_back_with_it(rig: Rig) -> None:
    """The rule file removed before the run: a permanent failure naming the rule; restored and
    replayed, the run posts."""
    rig.write("big", rule("big", SLACK))
    rig.process()
    (rig.folder / "big.toml").unlink()
    assert run(rig, rig.action_context(ok)) == Outcome.DEAD
    assert "rule 'big' is not loaded any more" in rig.runs()[0].last_error
    rig.write("big", rule("big", SLACK))
    with rig.engine.begin() as conn:
        runs.replay_one(conn, rig.runs()[0].id, rig.clock.now)
    assert run(rig, rig.action_context(ok)) == Outcome.DONE


def test_an_action_that_did_not_render_renders_again_on_replay(rig: Rig) -> None:
    """Recorded dead because its tag rendered too long; the rule fixed, the replay renders it again."""
    rig.write("odd", rule("odd", '[[actions]]\ntype = "event.tag"\ntags = ["{{ \'x\' * 300 }}"]\n'))
    event_id = rig.process()
    assert rig.runs()[0].state == "dead"
    rig.write("odd", rule("odd", '[[actions]]\ntype = "event.tag"\ntags = ["{{ \'x\' * 3 }}"]\n'))
    with rig.engine.begin() as conn:
        runs.replay_one(conn, rig.runs()[0].id, rig.clock.now)
    assert run(rig, rig.action_context(ok)) == Outcome.DONE
    with rig.engine.connect() as conn:
        assert list(conn.execute(select(event_tags.c.event_id, event_tags.c.tag))) == [(event_id, "xxx")]


def test_a_worker_whose_lease_was_taken_over_records_nothing(rig: Rig) -> None:
    """While one worker waits on the target its lease expires and another claims the run: the first
    one's done write is fenced off, and the run stays with the second."""
    rig.write("big", rule("big", SLACK))
    rig.process()
    run_id = rig.runs()[0].id

    def slow(request: httpx.Request) -> httpx.Response:
        rig.clock.advance(31)
        with rig.engine.begin() as conn:
            conn.execute(update(action_runs).values(lease_token="other"))
        return ok(request)

    assert run(rig, rig.action_context(slow), run_id) == Outcome.LOST_LEASE
    assert (rig.runs()[0].state, rig.runs()[0].lease_token) == ("running", "other")


def test_a_message_of_several_runs_claims_them_together_with_a_lease_for_each(rig: Rig) -> None:
    """Three runs in one message: one claim whose lease covers three turns, then each done in turn,
    each recorded as soon as its own try ends."""
    rig.write("big", rule("big", SLACK))
    for _ in range(3):
        rig.process()
    ids = [r.id for r in rig.runs()]
    leases: list[Any] = []

    def slack(request: httpx.Request) -> httpx.Response:
        with rig.engine.connect() as conn:
            states = conn.execute(select(action_runs.c.state, action_runs.c.available_at))
            leases.append(sorted((state, due) for state, due in states))
        rig.clock.advance(1)
        return ok(request)

    outcomes = actions.run_many(rig.engine, ids, rig.action_context(slack))
    assert list(outcomes.values()) == [Outcome.DONE] * 3
    claimed_until = rig.clock.now - timedelta(seconds=3) + timedelta(seconds=3 * 30)
    assert [[state for state, _ in seen] for seen in leases] == [
        ["running", "running", "running"],
        ["done", "running", "running"],
        ["done", "done", "running"],
    ]
    assert all(due == claimed_until for seen in leases for state, due in seen if state == "running")
