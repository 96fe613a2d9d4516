"""Recording what rules set off, in the transaction that marks the event done (SQLite, no broker)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select

from events import runtime_flags
from events.db import event_tags, utcnow
from tests.helpers import FakeClock
from tests.unit.actions_kit import SLACK, TAG, Rig, rule
from tests.unit.test_processing import ORDER
from workers import processing


@pytest.fixture
def rig(engine: Engine, tmp_path: Path) -> Iterator[Rig]:
    yield Rig(engine, tmp_path / "rules", FakeClock(utcnow()))


def count(rule_name: str, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("hookyard_rule_matches_total", {"rule": rule_name, "outcome": outcome})
        or 0.0
    )


def test_a_match_records_one_run_per_action_and_publishes_them(rig: Rig) -> None:
    """Two actions: two runs keyed event:rule:index, secrets left out. event.tag runs in the
    transaction that records it (done, its tags stored, nothing published); slack.post is pending
    and published after commit."""
    rig.write("big", rule("big", TAG + SLACK))
    before = count("big", "matched"), count("big", "fired")
    event_id = rig.process()
    runs = rig.runs()
    assert [(r.idempotency_key, r.action_type, r.state) for r in runs] == [
        (f"{event_id}:big:0", "event.tag", "done"),
        (f"{event_id}:big:1", "slack.post", "pending"),
    ]
    assert runs[0].params == {"tags": ["big", "shop"]} == runs[0].result
    assert (runs[0].attempts, [h["outcome"] for h in runs[0].history]) == (1, ["done"])
    with rig.engine.connect() as conn:
        assert sorted(conn.execute(select(event_tags.c.event_id, event_tags.c.tag))) == [
            (event_id, "big"),
            (event_id, "shop"),
        ]
    assert "webhook_url" not in runs[1].params and runs[1].params["text"] == "Order 1"
    assert rig.published == [runs[1].id]
    assert runs[1].relay_at == rig.clock.now + timedelta(seconds=30)  # published: the relay waits
    assert (count("big", "matched"), count("big", "fired")) == (before[0] + 1, before[1] + 1)


def test_an_event_no_rule_matches_records_nothing(rig: Rig) -> None:
    """A condition that fails (total 10 is not over 500) and a type no rule handles: no runs."""
    rig.write("big", rule("big", TAG).replace("value = 5", "value = 500"))
    rig.process()
    rig.process(type="customer.updated")
    assert rig.runs() == [] and rig.published == []


def test_processing_twice_records_once(rig: Rig) -> None:
    """A redelivered event id is skipped before matching: its actions are recorded once."""
    rig.write("big", rule("big", SLACK))
    event_id = rig.process()
    assert processing.process(rig.engine, event_id, rig.context()) == processing.Outcome.SKIPPED
    assert len(rig.runs()) == 1 and len(rig.published) == 1


def test_a_shadow_rule_records_and_publishes_nothing(rig: Rig) -> None:
    """mode = "shadow": runs in state shadow, nothing published, counted as shadow."""
    rig.write("quiet", rule("quiet", SLACK, extra='mode = "shadow"'))
    before = count("quiet", "shadow")
    rig.process()
    assert [r.state for r in rig.runs()] == ["shadow"]
    assert rig.published == []
    assert count("quiet", "shadow") == before + 1


def test_flags_turn_rules_and_sources_off_and_on(rig: Rig) -> None:
    """A rule flag off, or its source off, matches nothing; a flag on revives a rule its file disables."""
    rig.write("big", rule("big", TAG))
    rig.write("dormant", rule("dormant", TAG, extra="enabled = false"))
    with rig.engine.begin() as conn:
        runtime_flags.put(conn, "rule", "big", False, "test")
    rig.process()
    assert rig.runs() == []
    with rig.engine.begin() as conn:
        runtime_flags.put(conn, "rule", "big", None, "test")
        runtime_flags.put(conn, "rule", "dormant", True, "test")
        runtime_flags.put(conn, "source", "shop", False, "test")
    rig.process()
    assert rig.runs() == []
    with rig.engine.begin() as conn:
        runtime_flags.put(conn, "source", "shop", None, "test")
    rig.process()
    assert sorted(r.rule for r in rig.runs()) == ["big", "dormant"]


def test_flags_are_read_through_a_cache(rig: Rig) -> None:
    """Within the cache's ttl a worker keeps the flags it read; after it, the change applies."""
    ticks = [0.0]
    rig.flags = runtime_flags.FlagCache(5.0, clock=lambda: ticks[0])
    rig.write("big", rule("big", TAG))
    rig.process()
    with rig.engine.begin() as conn:
        runtime_flags.put(conn, "rule", "big", False, "test")
    ticks[0] = 4.9
    rig.process()
    assert len(rig.runs()) == 2
    ticks[0] = 5.0
    rig.process()
    assert len(rig.runs()) == 2


def test_a_throttle_lets_one_per_key_through_and_records_the_rest(rig: Rig) -> None:
    """At most one per source per 10 minutes: the second and third are recorded throttled, unpublished;
    after the window the next one fires again."""
    rig.write("loud", rule("loud", SLACK, extra="") + '[throttle]\nkey = "{{ source }}"\nper = "10m"\n')
    before = count("loud", "throttled")
    for _ in range(3):
        rig.process()
    assert [r.state for r in rig.runs()] == ["pending", "throttled", "throttled"]
    assert len(rig.published) == 1
    assert count("loud", "throttled") == before + 2
    rig.clock.advance(600)
    rig.process()
    assert [r.state for r in rig.runs()][-1] == "pending"
    assert len(rig.published) == 2


def test_a_throttle_counts_each_key_apart(rig: Rig) -> None:
    """Two sources, one key each: both fire."""
    rig.write("loud", rule("loud", SLACK) + '[throttle]\nkey = "{{ source }}"\nper = "1h"\n')
    rig.process()
    rig.process(source="other-shop")
    assert [r.state for r in rig.runs()] == ["pending", "pending"]


def test_debounce_keeps_only_the_last_match_and_waits(rig: Rig) -> None:
    """Two matches of one key inside the wait: the first is replaced, the second waits and is not
    published now (the relay publishes it when due)."""
    rig.write("calm", rule("calm", TAG) + '[debounce]\nkey = "{{ source }}"\nwait = "2m"\n')
    first = rig.process()
    rig.clock.advance(30)
    second = rig.process()
    runs = {r.event_id: r for r in rig.runs()}
    assert runs[first].state == "debounced"
    assert runs[second].state == "pending"
    assert runs[second].available_at == rig.clock.now + timedelta(minutes=2)
    assert runs[second].relay_at == runs[second].available_at
    assert rig.published == []


def test_an_action_that_cannot_render_is_recorded_dead(rig: Rig) -> None:
    """A tag rendered past 200 characters fails alone: that run is dead with the reason, the other
    action of the rule is done."""
    long_tag = '[[actions]]\ntype = "event.tag"\ntags = ["{{ \'x\' * 300 }}"]\n'
    rig.write("odd", rule("odd", TAG + long_tag))
    before = count("odd", "failed")
    rig.process()
    states = [(r.action_index, r.state) for r in rig.runs()]
    assert states == [(0, "done"), (1, "dead")]
    dead = rig.runs()[1]
    assert dead.params is None and "rendered tags.0" in dead.last_error
    assert count("odd", "failed") == before + 1


def test_an_event_of_another_payload_shape_still_finishes(rig: Rig) -> None:
    """A missing field renders empty (with a warning) and the action is recorded as usual."""
    rig.write("big", rule("big", '[[actions]]\ntype = "event.tag"\ntags = ["{{ payload.nope }}x"]\n'))
    rig.process({**ORDER})
    assert [r.params for r in rig.runs()] == [{"tags": ["x"]}]
