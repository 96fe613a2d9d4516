"""Conditions: pure tests of an event's context, combined with all / any / not.

The value written in the rule decides how the event's value is compared:

    a number      Decimal; the event's int, Decimal, Money (its amount), numeric string or float
                  (through str, so 0.1 stays 0.1) compare as Decimal, never as float
    a datetime    an aware datetime; the event's aware datetime or ISO-8601 string with an offset
    a string      strings only
    a boolean     booleans only

A value that cannot be read that way (a word where a number is wanted, a naive time) is "no match",
as is a missing path; only `exists = false` matches a missing path. Mistakes in the rule itself
(an unknown operator, a bad regex, a string where `gt` needs a number) are refused at load.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from rules.context import Context, Path, resolve
from schemas.records import Money

OPERATORS = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "contains",
    "startswith",
    "regex",
    "exists",
)
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
_ORDERED = ("gt", "gte", "lt", "lte")

Scalar = Decimal | str | bool | datetime
Test = Callable[[Any], bool]


def as_decimal(value: Any) -> Decimal | None:
    """A finite Decimal from a number, Money or numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Money):
        value = value.amount
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float | str):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def as_datetime(value: Any) -> datetime | None:
    """An aware datetime, or an ISO-8601 string with an offset; None for anything else."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    return None


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _as_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _reader(literal: Scalar) -> Callable[[Any], Any]:
    """How an event's value is read to compare it with this literal."""
    if isinstance(literal, bool):
        return _as_bool
    if isinstance(literal, Decimal):
        return as_decimal
    if isinstance(literal, datetime):
        return as_datetime
    return _as_str


def literal(value: Any) -> Scalar:
    """A value written in a rule file, as conditions compare it (floats through str → Decimal)."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float | Decimal):
        number = as_decimal(value)
        if number is None:
            raise ValueError(f"{value!r} is not a finite number")
        return number
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"datetime {value.isoformat()} has no offset; write e.g. {value.isoformat()}Z")
        return value
    raise ValueError(
        f"a value is a number, a string, a boolean or a datetime with an offset; got {type(value).__name__}"
    )


def operand(op: str, value: Any) -> Any:
    """Check and convert what an operator is given; raise ValueError saying what is wrong."""
    if op == "exists":
        if value is None or isinstance(value, bool):
            return value is not False
        raise ValueError("exists takes true or false")
    if value is None:
        raise ValueError(f"op {op!r} needs a value")
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise ValueError(f"{op} takes a non-empty list")
        items = [literal(v) for v in value]
        if len({type(v) for v in items}) > 1:
            raise ValueError(f"{op}: the list mixes types; use numbers, strings, booleans or datetimes")
        return frozenset(items)
    if op in ("startswith", "regex") and not isinstance(value, str):
        raise ValueError(f"{op} takes a string")
    if op == "regex":
        try:
            return re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regex {value!r}: {exc}") from None
    result = literal(value)
    if op in _ORDERED and not isinstance(result, Decimal | datetime):
        raise ValueError(f"{op} compares numbers and datetimes; got {show(result)}")
    return result


def show(value: Any) -> str:
    """A value as a rule file would write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, re.Pattern):
        return f'"{value.pattern}"'
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, frozenset):
        return "[" + ", ".join(sorted(show(v) for v in value)) + "]"
    return str(value)


def _test(op: str, expected: Any) -> Test:
    if op == "exists":
        return lambda value: (value is not None) is expected
    if op == "regex":
        search = expected.search
        return lambda value: isinstance(value, str) and search(value) is not None
    if op == "startswith":
        return lambda value: isinstance(value, str) and value.startswith(expected)
    if op in ("in", "not_in"):
        read = _reader(next(iter(expected)))
        inside = op == "in"
        return lambda value: (v := read(value)) is not None and (v in expected) is inside
    read = _reader(expected)
    if op == "contains":

        def contains(value: Any) -> bool:
            if isinstance(value, str):
                return isinstance(expected, str) and expected in value
            if isinstance(value, list | tuple):
                return any(read(item) == expected for item in value)
            return False

        return contains
    compare = _COMPARE[op]
    return lambda value: (v := read(value)) is not None and compare(v, expected)


@dataclass(frozen=True)
class Check:
    """One node of an explanation: what was tested, whether it held, and the value found."""

    text: str
    held: bool
    actual: Any = None
    children: tuple[Check, ...] = ()

    def lines(self, depth: int = 0) -> list[str]:
        mark = "✓" if self.held else "✗"
        seen = "" if self.children else f"  (found {'nothing' if self.actual is None else show(self.actual)})"
        return [f"{'  ' * depth}{mark} {self.text}{seen}"] + [
            line for child in self.children for line in child.lines(depth + 1)
        ]


class Leaf:
    """`path op value`."""

    __slots__ = ("text", "path", "holds_for")

    def __init__(self, path_text: str, path: Path, op: str, expected: Any) -> None:
        self.text = f"{path_text} {op} {show(expected)}"
        self.path = path
        self.holds_for = _test(op, expected)

    def holds(self, ctx: Context) -> bool:
        return self.holds_for(resolve(ctx, self.path))

    def explain(self, ctx: Context) -> Check:
        actual = resolve(ctx, self.path)
        return Check(self.text, self.holds_for(actual), actual)


class AllOf:
    __slots__ = ("children",)

    def __init__(self, children: tuple[Condition, ...]) -> None:
        self.children = children

    def holds(self, ctx: Context) -> bool:
        return all(child.holds(ctx) for child in self.children)

    def explain(self, ctx: Context) -> Check:
        checks = tuple(child.explain(ctx) for child in self.children)
        return Check("all", all(c.held for c in checks), children=checks)


class AnyOf:
    __slots__ = ("children",)

    def __init__(self, children: tuple[Condition, ...]) -> None:
        self.children = children

    def holds(self, ctx: Context) -> bool:
        return any(child.holds(ctx) for child in self.children)

    def explain(self, ctx: Context) -> Check:
        checks = tuple(child.explain(ctx) for child in self.children)
        return Check("any", any(c.held for c in checks), children=checks)


class Not:
    __slots__ = ("child",)

    def __init__(self, child: Condition) -> None:
        self.child = child

    def holds(self, ctx: Context) -> bool:
        return not self.child.holds(ctx)

    def explain(self, ctx: Context) -> Check:
        check = self.child.explain(ctx)
        return Check("not", not check.held, children=(check,))


Condition = Leaf | AllOf | AnyOf | Not
