"""Conditions: every operator, Decimal never float, missing paths and type mismatches as no match."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rules.conditions import as_decimal
from rules.context import context
from tests.unit.rules_kit import condition, event, records

CTX = context(event(), records())
YES = '{ path = "payload.count", op = "eq", value = 3 }'
YES_TOO = '{ path = "vendor", op = "eq", value = "shopify" }'
NO = '{ path = "payload.count", op = "eq", value = 4 }'

TABLE = [
    # eq / ne: the rule's literal decides how the event's value is read
    ('{ path = "payload.total_price", op = "eq", value = 500 }', True),  # "500.00" as Decimal
    ('{ path = "payload.total_price", op = "eq", value = "500" }', False),  # strings compare as strings
    ('{ path = "payload.total_price", op = "eq", value = "500.00" }', True),
    ('{ path = "records.order.total", op = "eq", value = 500 }', True),  # Money compares its amount
    ('{ path = "records.order.total.amount", op = "eq", value = 500.0 }', True),
    ('{ path = "records.order.total.currency", op = "eq", value = "USD" }', True),
    ('{ path = "payload.note", op = "ne", value = "x" }', True),
    ('{ path = "payload.missing", op = "ne", value = "x" }', False),  # missing: no match, even for ne
    ('{ path = "payload.note", op = "eq", value = 5 }', False),  # a word is not a number
    ('{ path = "payload.flag", op = "eq", value = true }', True),
    ('{ path = "payload.flag", op = "eq", value = 1 }', False),  # a boolean is not a number
    ('{ path = "payload.count", op = "eq", value = true }', False),
    # Decimal vs float
    ('{ path = "payload.precise", op = "lt", value = 500 }', True),  # 499.999999999999999 < 500
    ('{ path = "payload.precise", op = "eq", value = 500 }', False),
    ('{ path = "payload.total_price", op = "gt", value = 499.999999999999999 }', True),  # exact literal
    ('{ path = "payload.precise", op = "eq", value = 499.999999999999999 }', True),
    ('{ path = "payload.tenth", op = "eq", value = 0.1 }', True),  # the event's float through str
    ('{ path = "payload.subtotal", op = "lt", value = 500 }', True),
    ('{ path = "payload.nan", op = "gt", value = 0 }', False),  # not finite: no match
    ('{ path = "payload.nan", op = "ne", value = 0 }', False),
    # ordering
    ('{ path = "payload.count", op = "gt", value = 3 }', False),
    ('{ path = "payload.count", op = "gte", value = 3 }', True),
    ('{ path = "payload.count", op = "lt", value = 3 }', False),
    ('{ path = "payload.count", op = "lte", value = 3 }', True),
    ('{ path = "records.order.total.amount", op = "gt", value = 500 }', False),
    ('{ path = "records.order.total.amount", op = "gte", value = 500 }', True),
    # datetimes: aware, compared across offsets; naive ones are no match
    ('{ path = "occurred_at", op = "gt", value = 2024-04-30T00:00:00Z }', True),
    ('{ path = "payload.created_at", op = "gte", value = 2024-05-01T12:00:00Z }', True),
    ('{ path = "payload.created_at", op = "eq", value = 2024-05-01T14:00:00+02:00 }', True),
    ('{ path = "payload.naive", op = "gt", value = 2024-01-01T00:00:00Z }', False),
    ('{ path = "payload.count", op = "gt", value = 2024-01-01T00:00:00Z }', False),
    ('{ path = "records.order.created_at", op = "lt", value = 2025-01-01T00:00:00Z }', True),
    # in / not_in
    ('{ path = "payload.customer.orders_count", op = "in", value = [5, 7] }', True),
    ('{ path = "type", op = "in", value = ["order.created", "order.paid"] }', True),
    ('{ path = "payload.note", op = "in", value = ["a", "b"] }', False),
    ('{ path = "source", op = "not_in", value = ["other"] }', True),
    ('{ path = "payload.missing", op = "not_in", value = ["x"] }', False),
    ('{ path = "payload.note", op = "not_in", value = [1, 2] }', False),  # mismatch: no match
    # contains / startswith / regex
    ('{ path = "payload.note", op = "contains", value = "door" }', True),
    ('{ path = "payload.tags", op = "contains", value = "vip" }', True),
    ('{ path = "payload.tags", op = "contains", value = "retail" }', False),
    ('{ path = "payload.nums", op = "contains", value = 3 }', True),  # "3" in the list, as Decimal
    ('{ path = "payload.count", op = "contains", value = 3 }', False),
    ('{ path = "headers.x-shopify-shop-domain", op = "startswith", value = "acme." }', True),
    ('{ path = "payload.count", op = "startswith", value = "3" }', False),
    ('{ path = "payload.customer.email", op = "regex", value = "@example\\\\.com$" }', True),
    ('{ path = "payload.note", op = "regex", value = "^door" }', False),
    ('{ path = "payload.note", op = "regex", value = "(?i)LEAVE" }', True),
    ('{ path = "payload.count", op = "regex", value = "3" }', False),
    # exists: null and absent are both missing; so is a path through a list
    ('{ path = "payload.nothing", op = "exists" }', False),
    ('{ path = "payload.nothing", op = "exists", value = false }', True),
    ('{ path = "payload.missing", op = "exists", value = false }', True),
    ('{ path = "records.order.email", op = "exists" }', False),
    ('{ path = "records.order", op = "exists" }', True),
    ('{ path = "records.refund", op = "exists" }', False),
    ('{ path = "payload.line_items.price", op = "exists" }', False),
    ('{ path = "payload.note.deeper", op = "eq", value = "x" }', False),
    # all / any / not, nested
    (f"{{ all = [{YES}, {YES_TOO}] }}", True),
    (f"{{ all = [{YES}, {NO}] }}", False),
    (f"{{ any = [{NO}, {YES_TOO}] }}", True),
    (f"{{ any = [{NO}, {NO}] }}", False),
    (f"{{ not = {NO} }}", True),
    (f"{{ not = {YES} }}", False),
    (
        '{ any = [{ all = [{ path = "payload.flag", op = "eq", value = true }, '
        '{ not = { path = "payload.tags", op = "contains", value = "retail" } }] }, '
        '{ path = "payload.missing", op = "exists" }] }',
        True,
    ),
    (
        '{ all = [{ any = [{ path = "payload.count", op = "gt", value = 5 }, '
        '{ path = "payload.note", op = "startswith", value = "x" }] }, '
        '{ path = "payload.flag", op = "eq", value = true }] }',
        False,
    ),
]


@pytest.mark.parametrize(("inline", "expected"), TABLE)
def test_condition_table(inline: str, expected: bool) -> None:
    """Each condition holds (or not) on the sample order exactly as the table says."""
    assert condition(inline).holds(CTX) is expected


@pytest.mark.parametrize(("inline", "expected"), TABLE)
def test_explain_agrees_with_holds(inline: str, expected: bool) -> None:
    """explain() reaches the same verdict as holds() for every row."""
    assert condition(inline).explain(CTX).held is expected


def test_explain_says_which_conditions_held_and_what_was_found() -> None:
    """The explanation keeps each leaf's verdict and the value found at its path."""
    check = condition(
        '{ all = [{ path = "records.order.total.amount", op = "gte", value = 500 }, '
        '{ path = "payload.missing", op = "eq", value = "x" }] }'
    ).explain(CTX)
    assert (check.text, check.held) == ("all", False)
    amount, missing = check.children
    assert (amount.text, amount.held, amount.actual) == (
        "records.order.total.amount gte 500",
        True,
        Decimal("500.00"),
    )
    assert (missing.held, missing.actual) == (False, None)
    assert check.lines() == [
        "✗ all",
        "  ✓ records.order.total.amount gte 500  (found 500.00)",
        '  ✗ payload.missing eq "x"  (found nothing)',
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, Decimal("0.1")),  # through str, not the binary expansion of 0.1
        (499.99, Decimal("499.99")),
        ("  500.00 ", Decimal("500.00")),
        (7, Decimal(7)),
        (True, None),
        ("Infinity", None),
        (float("nan"), None),
        ("five", None),
        ([1], None),
    ],
)
def test_event_numbers_become_decimal_without_float_arithmetic(
    value: object, expected: Decimal | None
) -> None:
    """Floats pass through str; booleans, words and non-finite numbers are not numbers."""
    assert as_decimal(value) == expected
    if expected is not None:
        assert str(as_decimal(value)) == str(expected)
