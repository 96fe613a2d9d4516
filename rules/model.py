"""The rule file format, validated by pydantic (every table refuses keys it does not know).

One rule per `.toml` file; see docs/rules.md. Conditions are checked here, down to the operator,
path and value of each node, so an error names its place (`when.all[1].op`). Action parameters and
templates are checked by the loader, once the action type is known.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from connectors import registry as connectors
from events.dlq import parse_duration
from events.sources import NAME, Retry
from rules.actions import registry as actions
from rules.conditions import OPERATORS, AllOf, AnyOf, Condition, Leaf, Not, operand
from rules.constants import THROTTLE_MAX
from rules.context import parse_path
from schemas.errors import MalformedError


class _Combinators(BaseModel):
    """all / any / not, shared by `when` and every condition node."""

    model_config = ConfigDict(extra="forbid")

    all_: list[ConditionModel] | None = Field(default=None, alias="all", min_length=1)
    any_: list[ConditionModel] | None = Field(default=None, alias="any", min_length=1)
    not_: ConditionModel | None = Field(default=None, alias="not")

    def _parts(self) -> list[Condition]:
        parts: list[Condition] = []
        if self.all_ is not None:
            parts.append(AllOf(tuple(c.compile() for c in self.all_)))
        if self.any_ is not None:
            parts.append(AnyOf(tuple(c.compile() for c in self.any_)))
        if self.not_ is not None:
            parts.append(Not(self.not_.compile()))
        return parts


class ConditionModel(_Combinators):
    """`{ path = "…", op = "…", value = … }`, or one of `all = […]`, `any = […]`, `not = {…}`."""

    path: str | None = None
    op: str | None = None
    value: Any = Field(default=None, validate_default=True)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None:
            parse_path(value)
        return value

    @field_validator("op")
    @classmethod
    def _op(cls, value: str | None) -> str | None:
        if value is not None and value not in OPERATORS:
            raise ValueError(f"unknown operator {value!r}; operators: {', '.join(OPERATORS)}")
        return value

    @field_validator("value")
    @classmethod
    def _value(cls, value: Any, info: ValidationInfo) -> Any:
        op = info.data.get("op")
        return value if op is None else operand(op, value)

    @model_validator(mode="after")
    def _one_form(self) -> ConditionModel:
        leaf = self.path is not None or self.op is not None
        forms = [leaf, self.all_ is not None, self.any_ is not None, self.not_ is not None]
        if sum(forms) != 1:
            raise ValueError(
                "a condition is one of: path and op (and value), all = […], any = […], not = {…}"
            )
        if leaf and (self.path is None or self.op is None):
            raise ValueError("path and op go together")
        return self

    def compile(self) -> Condition:
        if self.path is not None and self.op is not None:
            return Leaf(self.path, parse_path(self.path), self.op, self.value)
        return self._parts()[0]


class WhenModel(_Combinators):
    """Which events: types (globs), optionally sources and vendors, and conditions (all must hold)."""

    types: list[str] = Field(min_length=1)
    sources: list[str] | None = Field(default=None, min_length=1)
    vendors: list[str] | None = Field(default=None, min_length=1)

    @field_validator("types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern or pattern != pattern.strip() or " " in pattern:
                raise ValueError(f"{pattern!r} is not an event type or glob (e.g. order.created, order.*)")
        return value

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        configured = (info.context or {}).get("sources")
        unknown = [s for s in value or () if configured is not None and s not in configured]
        if unknown:
            raise ValueError(
                f"unknown source {unknown[0]!r}; configured: {', '.join(sorted(configured or ())) or 'none'}"
            )
        return value

    @field_validator("vendors")
    @classmethod
    def _vendors(cls, value: list[str] | None) -> list[str] | None:
        unknown = [v for v in value or () if v not in connectors.names()]
        if unknown:
            raise ValueError(f"unknown vendor {unknown[0]!r}; connectors: {', '.join(connectors.names())}")
        return value

    def condition(self) -> Condition | None:
        parts = self._parts()
        return None if not parts else parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _seconds(value: Any) -> float:
    if not isinstance(value, str):
        raise ValueError("a duration is a string like 90s, 10m, 1h or 1d")
    try:
        seconds = parse_duration(value).total_seconds()
    except MalformedError as exc:
        raise ValueError(str(exc)) from None
    if seconds <= 0:
        raise ValueError(f"duration {value!r} must be above zero")
    return seconds


class ThrottleModel(BaseModel):
    """At most `max` firings per `per` for each value of the `key` template (one bucket if empty)."""

    model_config = ConfigDict(extra="forbid")
    key: str = ""
    per: float
    max: int = Field(default=1, ge=1, le=THROTTLE_MAX)

    _per = field_validator("per", mode="before")(_seconds)


class DebounceModel(BaseModel):
    """Fire once, after `wait` without a new match for the same `key`."""

    model_config = ConfigDict(extra="forbid")
    key: str = ""
    wait: float

    _wait = field_validator("wait", mode="before")(_seconds)


class ActionModel(BaseModel):
    """`type` and, beside it, the parameters of that action type (checked by the loader)."""

    model_config = ConfigDict(extra="allow")
    type: str

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in actions.names():
            raise ValueError(f"unknown action type {value!r}; installed: {', '.join(actions.names())}")
        return value


class RuleModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    enabled: bool = True
    mode: Literal["live", "shadow"] = "live"
    when: WhenModel
    actions: list[ActionModel] = Field(min_length=1)
    throttle: ThrottleModel | None = None
    debounce: DebounceModel | None = None
    retry: Retry | None = None  # max_attempts, base_s, cap_s: how this rule's actions are retried

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("a rule name is lower-case letters, digits, '-' or '_', at most 63 characters")
        return value

    @model_validator(mode="after")
    def _one_gate(self) -> RuleModel:
        if self.throttle is not None and self.debounce is not None:
            raise ValueError("a rule takes a throttle or a debounce, not both")
        return self
