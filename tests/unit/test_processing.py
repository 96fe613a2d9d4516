"""Claiming, fencing and record upserts on a real (SQLite) database, without a broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, insert, select

from events import dlq
from events.db import (
    EventState,
    attempts,
    dead_letters,
    events,
    records,
    source_flags,
    utcnow,
)
from events.ids import new_event_id
from events.sources import Forward, Retry, Source
from schemas.records import Customer
from tests.helpers import FakeClock
from workers import processing
from workers.processing import Outcome
from workers.relay import due_for_relay, split_lost


def add_event(engine: Engine, payload: dict[str, Any], **overrides: Any) -> str:
    now = utcnow()
    row = {
        "id": new_event_id(now.timestamp()),
        "source": "shop",
        "vendor": "shopify",
        "type": "order.created",
        "dedupe_key": new_event_id(0),
        "state": EventState.ACCEPTED,
        "attempts": 0,
        "received_at": now,
        "available_at": now,
        "relay_at": now,
        "relayed": 0,
        "headers": {},
        "body": orjson.dumps(payload),
        "payload": payload,
        **overrides,
    }
    with engine.begin() as conn:
        conn.execute(insert(events).values(row))
    return row["id"]


CTX = processing.Context(sources={}, lease_s=30)
BAD_PAYMENT = {
    "id": "evt_1",
    "type": "payment_intent.succeeded",
    "data": {
        "object": {
            "id": "pi_1",
            "object": "payment_intent",
            "status": "succeeded",
            "amount_received": 500,
            "currency": "dollars",
        }
    },
}
ORDER = {
    "id": 1,
    "currency": "EUR",
    "total_price": "10.00",
    "updated_at": "2026-01-01T00:00:00Z",
    "customer": {"id": 7, "email": "a@example.com", "updated_at": "2026-01-01T00:00:00Z"},
}


def event_row(engine: Engine, event_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(events).where(events.c.id == event_id)).one()


def test_process_twice_applies_once(engine: Engine) -> None:
    """A second delivery of a finished event is skipped: records keep version 1."""
    event_id = add_event(engine, ORDER)
    assert processing.process(engine, event_id, CTX) == Outcome.DONE
    assert processing.process(engine, event_id, CTX) == Outcome.SKIPPED
    with engine.connect() as conn:
        assert sorted(v for (v,) in conn.execute(select(records.c.version))) == [1, 1]
    assert event_row(engine, event_id).state == "done"


def test_a_live_lease_blocks_a_second_claim(engine: Engine) -> None:
    """While one worker holds the lease, another delivery of the same id cannot claim it."""
    event_id = add_event(engine, ORDER)
    with engine.begin() as conn:
        assert [r.id for r in processing.claim(conn, [event_id], "a", utcnow(), 60)] == [event_id]
    with engine.begin() as conn:
        assert processing.claim(conn, [event_id], "b", utcnow(), 60) == []


def test_expired_lease_is_taken_over_and_the_old_holder_is_fenced(engine: Engine) -> None:
    """After a lease expires another worker claims; the first cannot finish with its stale token."""
    event_id = add_event(engine, ORDER)
    start = utcnow()
    with engine.begin() as conn:
        assert len(processing.claim(conn, [event_id], "old", start, 1)) == 1
    with engine.begin() as conn:
        assert len(processing.claim(conn, [event_id], "new", start + timedelta(seconds=2), 60)) == 1
    with engine.begin() as conn:
        assert processing.finish(conn, [event_id], "old", utcnow()) == set()
    with engine.begin() as conn:
        assert processing.finish(conn, [event_id], "new", utcnow()) == {event_id}
    row = event_row(engine, event_id)
    assert (row.state, row.attempts) == ("done", 2)


def test_an_older_update_never_overwrites_a_newer_record(engine: Engine) -> None:
    """Out-of-order deliveries: the vendor's newer timestamp wins whatever the arrival order."""
    newer = Customer(external_id="7", email="new@example.com", updated_at=datetime(2026, 2, 1, tzinfo=UTC))
    older = Customer(external_id="7", email="old@example.com", updated_at=datetime(2026, 1, 1, tzinfo=UTC))
    with engine.begin() as conn:
        processing.upsert_records(conn, [("shopify", "e1", newer)])
        processing.upsert_records(conn, [("shopify", "e2", older)])
    with engine.connect() as conn:
        row = conn.execute(select(records)).one()
    assert (row.data["email"], row.event_id, row.version) == ("new@example.com", "e1", 1)


def test_a_permanent_failure_becomes_a_dead_letter_at_once(engine: Engine) -> None:
    """A payment no schema accepts is not retried: it is a dead letter with its traceback."""
    event_id = add_event(engine, BAD_PAYMENT, vendor="stripe", type="payment.succeeded")
    assert processing.process(engine, event_id, CTX) == Outcome.DEAD
    assert event_row(engine, event_id).state == "dead"
    with engine.connect() as conn:
        letter = conn.execute(select(dead_letters)).one()
        tried = conn.execute(select(attempts)).one()
    assert (letter.event_id, letter.error_class, letter.attempts) == (event_id, "InvalidPayload", 1)
    assert letter.task == "hookyard.events.process" and letter.args == [[event_id]]
    assert "Traceback" in letter.traceback
    assert (tried.outcome, tried.error_class, tried.number) == ("dead", "InvalidPayload", 1)


def test_relay_selects_only_unfinished_due_events(engine: Engine) -> None:
    """Done events and events not yet due are left alone by the relay query."""
    now = utcnow()
    due = add_event(engine, ORDER, relay_at=now - timedelta(seconds=1))
    add_event(engine, ORDER, relay_at=now + timedelta(seconds=60))
    add_event(engine, ORDER, relay_at=now - timedelta(seconds=1), state="done")
    with engine.connect() as conn:
        assert [r.id for r in due_for_relay(conn, now, 100)] == [due]


def forwarding_context(handler: Any, clock: FakeClock | None = None, **retry: Any) -> processing.Context:
    source = Source(
        "shop", "shopify", ("s",), forward=Forward(url="http://downstream.test/hook"), retry=Retry(**retry)
    )
    return processing.Context(
        sources={"shop": source},
        lease_s=30,
        rand=lambda: 1.0,
        clock=clock or utcnow,
        http=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def test_transient_downstream_failure_waits_in_the_database(engine: Engine) -> None:
    """A 503 from the forward target: state retry, due after the policy's backoff, attempt recorded."""
    event_id = add_event(engine, ORDER)
    clock = FakeClock(utcnow())
    ctx = forwarding_context(lambda request: httpx.Response(503), clock, base_s=10, cap_s=100)
    assert processing.process(engine, event_id, ctx) == Outcome.RETRY
    row = event_row(engine, event_id)
    assert row.state == "retry" and row.relay_at == row.available_at
    assert row.available_at == clock.now + timedelta(seconds=10)  # rand() = 1: the whole first backoff
    with engine.connect() as conn:
        assert conn.execute(select(records)).first() is None  # no effect before success


def test_retry_after_from_the_remote_overrides_backoff(engine: Engine) -> None:
    """A 429 with Retry-After: 42 schedules the retry 42 s out, whatever the policy says."""
    event_id = add_event(engine, ORDER)
    clock = FakeClock(utcnow())
    ctx = forwarding_context(
        lambda request: httpx.Response(429, headers={"Retry-After": "42"}), clock, base_s=1
    )
    assert processing.process(engine, event_id, ctx) == Outcome.RETRY
    assert event_row(engine, event_id).available_at == clock.now + timedelta(seconds=42)


def test_a_retry_is_not_claimed_before_it_is_due(engine: Engine) -> None:
    """A retrying event stays put until the clock reaches its due time, then is processed."""
    event_id = add_event(engine, ORDER)
    clock = FakeClock(utcnow())
    answers = iter([httpx.Response(503), httpx.Response(200)])
    ctx = forwarding_context(lambda request: next(answers), clock, base_s=10)
    assert processing.process(engine, event_id, ctx) == Outcome.RETRY
    clock.advance(9.9)
    assert processing.process(engine, event_id, ctx) == Outcome.SKIPPED
    clock.advance(0.1)
    assert processing.process(engine, event_id, ctx) == Outcome.DONE


def test_attempts_exhausted_becomes_a_dead_letter(engine: Engine) -> None:
    """After max_attempts transient failures the event is dead-lettered with every attempt kept."""
    event_id = add_event(engine, ORDER)
    clock = FakeClock(utcnow())
    ctx = forwarding_context(lambda request: httpx.Response(502), clock, max_attempts=3, base_s=1, cap_s=1)
    outcomes = []
    for _ in range(3):
        outcomes.append(processing.process(engine, event_id, ctx))
        clock.advance(1)  # every backoff is at most cap_s
    assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.DEAD]
    with engine.connect() as conn:
        assert [r.outcome for r in conn.execute(select(attempts).order_by(attempts.c.number))] == [
            "retry",
            "retry",
            "dead",
        ]
        assert conn.execute(select(dead_letters.c.attempts)).scalar_one() == 3


def test_downstream_401_flags_the_source_for_reauthorization(engine: Engine) -> None:
    """Refused credentials are not retried: dead letter, and the source is flagged."""
    event_id = add_event(engine, ORDER)
    ctx = forwarding_context(lambda request: httpx.Response(401, text="bad token"))
    assert processing.process(engine, event_id, ctx) == Outcome.DEAD
    with engine.connect() as conn:
        flag = conn.execute(select(source_flags)).one()
    assert flag.source == "shop" and flag.needs_reauth and "401" in flag.reason


def test_forward_carries_the_event_id_as_idempotency_key(engine: Engine) -> None:
    """Downstream sees the same Idempotency-Key on every attempt: the event id."""
    event_id = add_event(engine, ORDER)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Idempotency-Key"])
        return httpx.Response(500 if len(seen) == 1 else 200)

    clock = FakeClock(utcnow())
    ctx = forwarding_context(handler, clock, base_s=1, cap_s=1)
    assert processing.process(engine, event_id, ctx) == Outcome.RETRY
    clock.advance(1)
    assert processing.process(engine, event_id, ctx) == Outcome.DONE
    assert seen == [event_id, event_id]


def test_a_batch_claims_together_finishes_together_and_fails_one_by_one(engine: Engine) -> None:
    """One bad event in a batch is dead-lettered alone; the others are done, each applied once;
    ids not claimable (already done) are skipped."""
    good = [add_event(engine, {**ORDER, "id": n, "customer": None}) for n in (1, 2, 3)]
    bad = add_event(engine, BAD_PAYMENT, vendor="stripe", type="payment.succeeded")
    assert processing.process(engine, good[0], CTX) == Outcome.DONE
    outcomes = processing.process_many(engine, [*good, bad], CTX)
    assert outcomes == {
        good[0]: Outcome.SKIPPED,
        good[1]: Outcome.DONE,
        good[2]: Outcome.DONE,
        bad: Outcome.DEAD,
    }
    with engine.connect() as conn:
        assert sorted(v for (v,) in conn.execute(select(records.c.version))) == [1, 1, 1]
        outcomes_logged = sorted(r.outcome for r in conn.execute(select(attempts)))
    assert outcomes_logged == ["dead", "done", "done", "done"]


REFUSE_POISON_RECORDS = """
CREATE TRIGGER refuse_poison BEFORE INSERT ON records WHEN NEW.external_id LIKE 'poison%'
BEGIN SELECT RAISE(ABORT, 'poisoned record'); END
"""


def test_one_event_whose_records_the_database_refuses_fails_alone(engine: Engine) -> None:
    """A message of 10 with 1 poison: 9 done on their first attempt, forwarded once each; the poison
    is dead at once (its data will never store), not retried and not charged to its neighbours."""
    with engine.begin() as conn:
        conn.exec_driver_sql(REFUSE_POISON_RECORDS)
    ids = [
        add_event(engine, {**ORDER, "id": "poison-1" if n == 4 else n, "customer": None}) for n in range(10)
    ]
    forwarded: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        forwarded.append(request.headers["Idempotency-Key"])
        return httpx.Response(200)

    outcomes = processing.process_many(engine, ids, forwarding_context(handler))
    assert [outcomes[i] for i in ids] == [Outcome.DONE] * 4 + [Outcome.DEAD] + [Outcome.DONE] * 5
    assert sorted(forwarded) == sorted(ids)  # one forward each: nothing repeated
    with engine.connect() as conn:
        tried = conn.execute(select(attempts.c.event_id, attempts.c.number, attempts.c.outcome)).all()
        letter = conn.execute(select(dead_letters)).one()
    assert sorted((n, o) for _, n, o in tried) == [(1, "dead")] + [(1, "done")] * 9
    assert (letter.event_id, letter.error_class) == (ids[4], "InvalidPayload")
    assert "poisoned record" in letter.error_message


def test_a_record_key_no_database_can_store_is_refused_before_the_write(engine: Engine) -> None:
    """An order id of 300 characters is an InvalidPayload for that event: dead, neighbours done."""
    ids = [add_event(engine, {**ORDER, "id": "9" * 300 if n == 0 else n, "customer": None}) for n in range(3)]
    outcomes = processing.process_many(engine, ids, CTX)
    assert [outcomes[i] for i in ids] == [Outcome.DEAD, Outcome.DONE, Outcome.DONE]


def test_after_a_replay_attempt_numbers_go_on_and_the_budget_starts_afresh(engine: Engine) -> None:
    """Dead after 2 of 2 attempts, replayed: the next attempts are numbers 3 and 4 (not 1 again), and
    a transient failure at 3 is retried because the replay granted a new budget of 2."""
    event_id = add_event(engine, ORDER)
    clock = FakeClock(utcnow())
    answers = iter([httpx.Response(500), httpx.Response(500), httpx.Response(500), httpx.Response(200)])
    ctx = forwarding_context(lambda request: next(answers), clock, max_attempts=2, base_s=1, cap_s=1)
    outcomes = []
    for _ in range(2):
        outcomes.append(processing.process(engine, event_id, ctx))
        clock.advance(1)
    with engine.begin() as conn:
        assert dlq.replay_one(conn, event_id, clock.now)
    for _ in range(2):
        outcomes.append(processing.process(engine, event_id, ctx))
        clock.advance(1)
    assert outcomes == [Outcome.RETRY, Outcome.DEAD, Outcome.RETRY, Outcome.DONE]
    with engine.connect() as conn:
        numbers = [(r.number, r.outcome) for r in conn.execute(select(attempts).order_by(attempts.c.id))]
    assert numbers == [(1, "retry"), (2, "dead"), (3, "retry"), (4, "done")]


def test_a_hand_back_releases_the_lease_at_once_and_uncounts_the_attempt(engine: Engine) -> None:
    """A stopping worker gives back what it claimed and did not begin: no lease left, the attempt
    uncounted, claimable (and relayable) now by anyone; a retry goes back to waiting, not to new."""
    fresh, retried = add_event(engine, ORDER), add_event(engine, ORDER, state=EventState.RETRY, attempts=2)
    now = utcnow()
    with engine.begin() as conn:
        assert len(processing.claim(conn, [fresh, retried], "stopping", now, 60)) == 2
    with engine.begin() as conn:
        assert processing.release(conn, [fresh, retried], "stopping", now) == {fresh, retried}
    rows = [event_row(engine, event_id) for event_id in (fresh, retried)]
    assert [(r.state, r.attempts, r.lease_token) for r in rows] == [("accepted", 0, None), ("retry", 2, None)]
    with engine.begin() as conn:
        assert {r.id for r in due_for_relay(conn, now, 10)} == {fresh, retried}
        assert len(processing.claim(conn, [fresh, retried], "next", now, 60)) == 2
    assert event_row(engine, fresh).attempts == 1  # one attempt in all, none recorded as lost


class WorkerDied(BaseException):
    """Stands for the worker process dying mid-event: nothing after it runs, nothing is caught."""


def test_an_event_that_kills_its_worker_is_dead_lettered_and_spares_its_neighbours(engine: Engine) -> None:
    """A batch whose worker dies: the relay sends each of its events alone; the innocent one is done,
    the one that kills its worker again is dead-lettered (WorkerLost) once lost attempts use its
    budget, without being run again."""
    poison, good = add_event(engine, {**ORDER, "id": 1}), add_event(engine, {**ORDER, "id": 2})

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["Idempotency-Key"] == poison:
            raise WorkerDied
        return httpx.Response(200)

    clock = FakeClock(utcnow())
    ctx = forwarding_context(handler, clock, max_attempts=2)
    with pytest.raises(WorkerDied):
        processing.process_many(engine, [good, poison], ctx)
    clock.advance(31)  # the lease expires
    with engine.connect() as conn:
        together, alone = split_lost(due_for_relay(conn, clock.now, 10))
    assert together == [] and sorted(alone) == sorted([(poison, "shopify"), (good, "shopify")])

    assert processing.process(engine, good, ctx) == Outcome.DONE
    with pytest.raises(WorkerDied):
        processing.process(engine, poison, ctx)
    clock.advance(31)
    assert processing.process(engine, poison, ctx) == Outcome.DEAD
    with engine.connect() as conn:
        letter = conn.execute(select(dead_letters)).one()
        log = [r.outcome for r in conn.execute(select(attempts).where(attempts.c.event_id == poison))]
    assert (letter.event_id, letter.error_class) == (poison, "WorkerLost")
    assert "attempt 2, the last of 2" in letter.error_message
    assert log == ["lease_expired", "lease_expired", "dead"]
    assert event_row(engine, good).state == EventState.DONE


def test_a_lost_attempt_with_budget_left_runs_after_its_batch_is_finished(engine: Engine) -> None:
    """Claimed again together, the event whose last attempt was lost runs after the others are
    committed: if it kills the worker again, they are done already."""
    poison, good = add_event(engine, {**ORDER, "id": 1}), add_event(engine, {**ORDER, "id": 2})
    clock = FakeClock(utcnow())

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["Idempotency-Key"] == poison:
            raise WorkerDied
        return httpx.Response(200)

    ctx = forwarding_context(handler, clock, max_attempts=5)
    with engine.begin() as conn:  # a worker claimed the poison and died
        processing.claim(conn, [poison], "dead-worker", clock.now, 30)
    clock.advance(31)
    with pytest.raises(WorkerDied):
        processing.process_many(engine, [poison, good], ctx)
    assert event_row(engine, good).state == EventState.DONE
    assert event_row(engine, poison).state == EventState.PROCESSING
