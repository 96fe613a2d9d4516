"""Dead-letter operations on a real (SQLite) database: paced, interruptible, resumable replay."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, insert, select

from events import dlq
from events.db import dead_letters, events, utcnow
from events.ids import new_event_id


def add_dead(engine: Engine, n: int) -> list[str]:
    now = utcnow()
    ids = [new_event_id(now.timestamp()) for _ in range(n)]
    with engine.begin() as conn:
        for event_id in ids:
            conn.execute(
                insert(events).values(
                    id=event_id,
                    source="shop",
                    vendor="shopify",
                    type="order.created",
                    dedupe_key=event_id,
                    state="dead",
                    attempts=3,
                    received_at=now,
                    available_at=now,
                    relay_at=now,
                    relayed=0,
                    headers={},
                    body=b"{}",
                    payload={},
                )
            )
            conn.execute(
                insert(dead_letters).values(
                    event_id=event_id,
                    source="shop",
                    vendor="shopify",
                    type="order.created",
                    task="t",
                    args=[event_id],
                    error_class="TransientError",
                    error_message="503",
                    attempts=3,
                    died_at=now,
                    state="dead",
                    replays=0,
                )
            )
    return ids


class Interrupt(KeyboardInterrupt):
    pass


def test_interrupted_bulk_replay_resumes_where_it_stopped(engine: Engine) -> None:
    """Ctrl-C after the first chunk: what was replayed stays replayed, a rerun takes only the rest."""
    ids = add_dead(engine, 25)
    published: list[tuple[str, str]] = []

    def flaky_publish(batch: list[tuple[str, str]]) -> int:
        published.extend(batch)
        if len(published) == 10:
            raise Interrupt
        return len(batch)

    with engine.connect() as conn:
        targets = dlq.plan(conn, dlq.Filters(source="shop"))
    with pytest.raises(Interrupt):
        dlq.replay(engine, targets, publish=flaky_publish, actor="test", rate_per_s=10, sleep=lambda s: None)
    with engine.connect() as conn:
        remaining = dlq.plan(conn, dlq.Filters(source="shop"))
    assert len(remaining) == 15
    replayed, skipped = dlq.replay(engine, remaining, publish=published.extend, actor="test")
    assert (replayed, skipped) == (15, 0)
    assert sorted(e for e, _ in published) == sorted(ids)  # each published exactly once
    with engine.connect() as conn:
        assert {s for (s,) in conn.execute(select(events.c.state))} == {"accepted"}


def test_replay_is_paced_to_the_rate(engine: Engine) -> None:
    """At 5/s, 12 replays go in chunks of 5 with a sleep making up each second."""
    add_dead(engine, 12)
    slept: list[float] = []
    with engine.connect() as conn:
        targets = dlq.plan(conn, dlq.Filters())
    clock = iter(float(i) * 0.1 for i in range(100))
    dlq.replay(
        engine, targets, publish=len, actor="t", rate_per_s=5, clock=lambda: next(clock), sleep=slept.append
    )
    assert [round(s, 2) for s in slept] == [0.9, 0.9]  # two waits between three chunks (5, 5, 2)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("a.b", 1, {"a": {"b": 1}, "l": [{"x": 0}]}),
        ("l.0.x", "y", {"a": {}, "l": [{"x": "y"}]}),
        ("new.deep", True, {"a": {}, "l": [{"x": 0}], "new": {"deep": True}}),
    ],
)
def test_set_path_edits_a_copy(path: str, value: Any, expected: Any) -> None:
    """Dotted paths reach into objects and lists; the original is untouched."""
    doc = {"a": {}, "l": [{"x": 0}]}
    assert dlq.set_path(doc, path, value) == expected
    assert doc == {"a": {}, "l": [{"x": 0}]}


@pytest.mark.parametrize("path", ["l.5.x", "l.x", "s.x"])
def test_set_path_refuses_paths_that_do_not_fit(path: str) -> None:
    """An index past the end, a key into a list, or descending into a string: EditRejected."""
    with pytest.raises(dlq.EditRejected):
        dlq.set_path({"l": [{}], "s": "text"}, path, 1)


@pytest.mark.parametrize(
    ("raw", "value"),
    [("usd", "usd"), ("12", 12), ("true", True), ('"12"', "12"), ("null", None), ('{"a": 1}', {"a": 1})],
)
def test_set_values_parse_as_json_when_they_can(raw: str, value: Any) -> None:
    """--set VALUE is JSON when it parses, else the plain string."""
    assert dlq.parse_value(raw) == value
    assert orjson.dumps(dlq.parse_value(raw)) == orjson.dumps(value)
