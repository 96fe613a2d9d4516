"""The index: an event evaluates only the rules of its type; globs, filters, flags and match keys."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rules import ruleset as ruleset_module
from rules.context import Context, context
from rules.loader import load_rules
from rules.ruleset import Rule, RuleSet
from tests.unit.rules_kit import ENV, event, records, rule_text, write


class Spy:
    """A condition that counts how often it is evaluated."""

    def __init__(self, result: bool = True) -> None:
        self.calls = 0
        self.result = result

    def holds(self, ctx: Context) -> bool:
        self.calls += 1
        return self.result

    def explain(self, ctx: Context) -> Any:
        raise AssertionError("not used")


def rule_set(tmp_path: Path, rules: dict[str, str]) -> RuleSet:
    """One file per rule: name → the JSON-ish list of its types."""
    for name, types in rules.items():
        write(tmp_path / "rules", f"{name}.toml", rule_text(name, types=types))
    return load_rules(tmp_path / "rules", env=ENV)


def spied(rules: RuleSet) -> tuple[RuleSet, dict[str, Spy]]:
    spies = {r.name: Spy() for r in rules.rules}
    return RuleSet(tuple(replace(r, condition=spies[r.name]) for r in rules.rules)), spies  # type: ignore[arg-type]


def names(rules: tuple[Rule, ...]) -> list[str]:
    return [r.name for r in rules]


def test_an_event_evaluates_only_the_rules_of_its_type(tmp_path: Path) -> None:
    """Rules for other types are never evaluated; exact and glob rules of the type are, once each."""
    loaded = rule_set(
        tmp_path,
        {
            "created": '["order.created"]',
            "any-order": '["order.*"]',
            "both": '["order.created", "order.*"]',
            "tickets": '["ticket.created"]',
            "refunds": '["refund.*"]',
        },
    )
    rules, spies = spied(loaded)
    matches = rules.match(event(), records())
    assert {s: spy.calls for s, spy in spies.items()} == {
        "any-order": 1,
        "both": 1,
        "created": 1,
        "refunds": 0,
        "tickets": 0,
    }
    assert sorted({m.rule.name for m in matches}) == ["any-order", "both", "created"]


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("order.created", ["all", "created", "orders"]),
        ("order.paid", ["all", "orders"]),
        ("orders.created", ["all"]),  # order.* is not a prefix match
        ("shopify.orders/edited", ["all", "shopify"]),
        ("ticket.created", ["all", "tickets"]),
    ],
)
def test_glob_types(tmp_path: Path, event_type: str, expected: list[str]) -> None:
    """fnmatch globs select types; the candidates keep rule order."""
    rules = rule_set(
        tmp_path,
        {
            "all": '["*"]',
            "created": '["order.created"]',
            "orders": '["order.*"]',
            "shopify": '["shopify.*"]',
            "tickets": '["ticket.[a-z]*"]',
        },
    )
    assert names(rules.candidates(event_type)) == expected


def test_the_index_lists_exact_types_in_a_dict_and_globs_apart(tmp_path: Path) -> None:
    """What `hookyard rules check` prints: exact types → rules, and the glob list."""
    rules = rule_set(tmp_path, {"a": '["order.created", "order.*"]', "b": '["order.created"]'})
    assert {t: names(tuple(found)) for t, found in rules.exact.items()} == {"order.created": ["a", "b"]}
    assert [(g, r.name) for g, r in rules.globs] == [("order.*", "a")]


def test_the_candidate_cache_starts_over_when_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unbounded event types (a generic connector) cannot grow the cache past its limit."""
    monkeypatch.setattr(ruleset_module, "TYPE_CACHE_MAX", 2)
    rules = rule_set(tmp_path, {"all": '["*"]'})
    for event_type in ("a", "b", "c"):
        assert names(rules.candidates(event_type)) == ["all"]
    assert list(rules._candidates) == ["c"]


def test_sources_and_vendors_filter_before_conditions(tmp_path: Path) -> None:
    """A rule for another source or vendor does not match, whatever its condition."""
    folder = tmp_path / "rules"
    write(folder, "shop.toml", rule_text("shop").replace("[when]\n", '[when]\nsources = ["shop"]\n'))
    write(folder, "other.toml", rule_text("other").replace("[when]\n", '[when]\nsources = ["other"]\n'))
    write(folder, "stripe.toml", rule_text("stripe").replace("[when]\n", '[when]\nvendors = ["stripe"]\n'))
    rules = load_rules(folder, env=ENV)
    assert sorted({m.rule.name for m in rules.match(event(), records())}) == ["shop"]


def test_conditions_decide_and_one_match_per_action_with_its_idempotency_key(tmp_path: Path) -> None:
    """A $500 order matches (gt 499), a $400 one does not; one Match per action, keyed (event, rule, i)."""
    rules = rule_set(tmp_path, {"big-orders": '["order.created"]'})
    assert rules.match(event(), records("400.00")) == []
    matches = rules.match(event(), records("500.00"))
    assert [(m.idempotency_key, m.action.type) for m in matches] == [
        ("ev_1:big-orders:0", "event.tag"),
        ("ev_1:big-orders:1", "slack.post"),
    ]
    assert rules.match(event(), []) == []  # no order record: the path is missing, no match


def test_disabled_rules_stay_quiet_unless_a_flag_enables_them_and_shadow_rules_match(tmp_path: Path) -> None:
    """enabled = false matches nothing; `enabled=` (runtime flags) overrides the file; shadow is reported."""
    folder = tmp_path / "rules"
    write(folder, "off.toml", rule_text("off", extra="enabled = false"))
    write(folder, "shadow.toml", rule_text("shadow", extra='mode = "shadow"'))
    rules = load_rules(folder, env=ENV)
    assert {(m.rule.name, m.rule.mode) for m in rules.match(event(), records())} == {("shadow", "shadow")}
    flagged = rules.match(event(), records(), enabled=lambda rule: rule.name == "off")
    assert {m.rule.name for m in flagged} == {"off"}


def test_explain_walks_type_filters_and_conditions(tmp_path: Path) -> None:
    """A rule's explanation covers its type, source filter and conditions, each with its verdict."""
    folder = tmp_path / "rules"
    write(folder, "big.toml", rule_text("big").replace("[when]\n", '[when]\nsources = ["shop"]\n'))
    rule = load_rules(folder, env=ENV).rules[0]
    lines = rule.explain(context(event(), records("450.00"))).lines()
    assert lines == [
        "✗ rule big",
        '  ✓ type in [order.created]  (found "order.created")',
        '  ✓ source in [shop]  (found "shop")',
        "  ✗ all",
        "    ✗ records.order.total.amount gt 499  (found 450.00)",
    ]
