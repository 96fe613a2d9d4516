"""`python -m bench.rules`: what matching one event against 10, 100 and 1,000 rules costs.

Pure and in-process (no services). For each size the rules are written as TOML files and loaded by
the real loader: 3 for the event's type (`order.created`: two hold, one does not), 1 glob
(`order.*`), and the rest for 40 other exact types and 10 other globs, as a real folder where most
rules watch other events. Measured per event, best of 20 runs of 500 events each (the least disturbed run):

- match, type with rules: `RuleSet.match` on a $600 Shopify order → 3 matches, their templates
  rendered (the whole cost a worker pays);
- match, type without rules: an event type no rule handles (the common case);
- first sight of a type: the candidate lookup the first time a type is seen (then remembered).

Goal: ≤ 50 µs per event at 1,000 rules.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from rules.loader import load_rules
from rules.ruleset import RuleSet
from schemas.envelope import Envelope
from schemas.records import Customer, Money, Order, Record

SIZES = (10, 100, 1000)
GOAL_US = 50.0
REPEAT, LOOPS = 20, 500
ENV = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXX"}

ON_TYPE = [
    # (name, condition): the first two hold for the $600 order, the third does not
    ("big-orders", '{ path = "records.order.total.amount", op = "gt", value = 500 }'),
    (
        "us-big-orders",
        '{ all = [{ path = "records.order.total.amount", op = "gte", value = 250.00 }, '
        '{ path = "records.order.total.currency", op = "in", value = ["USD", "CAD"] }, '
        '{ not = { path = "payload.tags", op = "contains", value = "test" } }] }',
    ),
    ("vip-email", '{ path = "records.customer.email", op = "regex", value = "@vip\\\\.example$" }'),
]


def _rule(name: str, types: str, condition: str) -> str:
    return (
        f'name = "{name}"\n[when]\ntypes = {types}\nall = [{condition}]\n'
        '[[actions]]\ntype = "slack.post"\nwebhook_url = "${SLACK_WEBHOOK_URL}"\n'
        'text = "{{ rule }}: order {{ records.order.number }} for {{ records.order.total|money }}"\n'
    )


def write_rules(folder: Path, count: int) -> None:
    for name, condition in ON_TYPE:
        (folder / f"{name}.toml").write_text(_rule(name, '["order.created"]', condition))
    (folder / "all-orders.toml").write_text(
        _rule("all-orders", '["order.*"]', '{ path = "payload.total_price", op = "gt", value = 10000 }')
    )
    for i in range(count - len(ON_TYPE) - 1):
        types = f'["other{i % 10}.*"]' if i < 10 else f'["vendor{i % 40}.event{i % 40}"]'
        condition = f'{{ path = "payload.amount", op = "gt", value = {i} }}'
        (folder / f"other-{i:04}.toml").write_text(_rule(f"other-{i:04}", types, condition))


def order_event(event_type: str = "order.created") -> tuple[Envelope, list[Record]]:
    now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    event = Envelope(
        id="ev_bench",
        source="shop",
        vendor="shopify",
        type=event_type,
        dedupe_key="acme:orders/create:1",
        occurred_at=now,
        received_at=now,
        headers={"x-shopify-shop-domain": "acme.myshopify.com"},
        payload={"id": 1001, "total_price": "600.00", "tags": ["vip"], "email": "ada@example.com"},
    )
    records: list[Record] = [
        Order(external_id="1001", number="#1001", total=Money(amount=Decimal("600.00"), currency="USD")),
        Customer(external_id="c1", email="ada@example.com"),
    ]
    return event, records


def per_event_us(work: Callable[[], object]) -> float:
    """Best of REPEAT runs of LOOPS calls, in µs per call."""
    best = float("inf")
    for _ in range(REPEAT):
        start = time.perf_counter()
        for _ in range(LOOPS):
            work()
        best = min(best, (time.perf_counter() - start) / LOOPS)
    return best * 1e6


def first_sight_us(rules: RuleSet) -> float:
    """The candidate lookup for types never seen before (each call a new type)."""
    start = time.perf_counter()
    for i in range(LOOPS):
        rules.candidates(f"fresh.type{i}")
    rules._candidates.clear()
    return (time.perf_counter() - start) / LOOPS * 1e6


def measure(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        write_rules(Path(tmp), count)
        rules = load_rules(Path(tmp), env=ENV)
    assert len(rules) == count
    event, records = order_event()
    matched = rules.match(event, records)
    assert sorted(m.rule.name for m in matched) == ["big-orders", "us-big-orders"], matched
    quiet, _ = order_event("customer.updated")
    return {
        "rules": count,
        "matching_us": per_event_us(lambda: rules.match(event, records)),
        "no_rules_us": per_event_us(lambda: rules.match(quiet, records)),
        "first_sight_us": first_sight_us(rules),
    }


def main() -> None:
    rows = [measure(count) for count in SIZES]
    print(f"rules matching, per event (best of {REPEAT} × {LOOPS}), Python {sys.version.split()[0]}")
    print(f"{'rules':>6} {'type with rules':>16} {'type without':>13} {'first sight':>12}")
    for row in rows:
        print(
            f"{row['rules']:>6} {row['matching_us']:>13.1f} µs {row['no_rules_us']:>10.2f} µs "
            f"{row['first_sight_us']:>9.1f} µs"
        )
    worst = rows[-1]["matching_us"]
    verdict = "PASS" if worst <= GOAL_US else "MISS"
    print(f"goal ≤ {GOAL_US:.0f} µs per event at {SIZES[-1]} rules: {worst:.1f} µs {verdict}")


if __name__ == "__main__":
    main()
