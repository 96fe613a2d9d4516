"""Loaded rules, indexed by event type, and what matching an event yields.

`RuleSet.match(event, records)` looks the event's type up (exact types in a dict, globs in a short
list, the union remembered per type), so rules written for other types cost nothing. Each action of
each matching rule becomes one `Match` with its parameters rendered; its idempotency key is
(event id, rule name, action index), the same however often the event is processed or replayed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError

from rules.actions import SECRET, marked
from rules.conditions import Check, Condition
from rules.constants import ACTION_RETRY, GATE_KEY_MAX, TYPE_CACHE_MAX
from rules.context import Context, context
from rules.templates import Template
from rules.templates import variables as template_variables
from schemas.envelope import Envelope
from schemas.errors import PermanentError
from schemas.records import Record
from schemas.retry import RetryPolicy

log = structlog.get_logger()

GLOB_CHARS = frozenset("*?[")


def compile_tree(value: Any) -> Any:
    """A templated parameter with each string (at any depth) compiled; raise ValueError if one fails."""
    if isinstance(value, str):
        return Template(value)
    if isinstance(value, list):
        return [compile_tree(v) for v in value]
    if isinstance(value, dict):
        return {k: compile_tree(v) for k, v in value.items()}
    return value


def _render_tree(tree: Any, variables: Mapping[str, Any], missing: list[str], where: str) -> Any:
    if isinstance(tree, Template):
        rendered = tree.render(variables)
        missing.extend(f"{where}: {m}" for m in rendered.missing)
        return rendered.text
    if isinstance(tree, list):
        return [_render_tree(v, variables, missing, f"{where}[{i}]") for i, v in enumerate(tree)]
    if isinstance(tree, dict):
        return {k: _render_tree(v, variables, missing, f"{where}.{k}") for k, v in tree.items()}
    return tree


@dataclass(frozen=True, eq=False)
class Action:
    index: int  # position in the rule's [[actions]]: part of the idempotency key
    type: str
    params: BaseModel  # as loaded: secrets expanded, templates as written
    templates: Mapping[str, Any]  # templated field → its value with every string compiled
    _fixed: dict[str, Any] = field(init=False, repr=False)  # the parameters no template changes

    def __post_init__(self) -> None:
        object.__setattr__(self, "_fixed", self.params.model_dump(exclude=set(self.templates)))

    def render(self, variables: Mapping[str, Any]) -> tuple[BaseModel, tuple[str, ...]]:
        """The parameters for one event, and what was missing; PermanentError if they cannot be made."""
        if not self.templates:
            return self.params, ()
        missing: list[str] = []
        rendered = {
            name: _render_tree(tree, variables, missing, name) for name, tree in self.templates.items()
        }
        try:
            params = type(self.params).model_validate({**self._fixed, **rendered})
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise PermanentError(f"rendered {where}: {err['msg']}") from None
        return params, tuple(missing)


@dataclass(frozen=True)
class Throttle:
    key: Template
    per_s: float
    max: int


@dataclass(frozen=True)
class Debounce:
    key: Template
    wait_s: float


@dataclass(frozen=True, eq=False)
class Rule:
    name: str
    file: str
    description: str
    enabled: bool
    mode: str  # "live" fires its actions; "shadow" only records what it would have done
    types: tuple[str, ...]
    sources: frozenset[str] | None
    vendors: frozenset[str] | None
    condition: Condition | None
    actions: tuple[Action, ...]
    throttle: Throttle | None = None
    debounce: Debounce | None = None
    retry: RetryPolicy = ACTION_RETRY  # how its actions are retried

    def handles(self, event_type: str) -> bool:
        return any(fnmatchcase(event_type, pattern) for pattern in self.types)

    def applies(self, ctx: Context) -> bool:
        """Source, vendor and condition (the type was settled by the index)."""
        return (
            (self.sources is None or ctx["source"] in self.sources)
            and (self.vendors is None or ctx["vendor"] in self.vendors)
            and (self.condition is None or self.condition.holds(ctx))
        )

    def explain(self, ctx: Context) -> Check:
        """Every test of the rule against one event, with what held."""
        checks = [Check(f"type in [{', '.join(self.types)}]", self.handles(ctx["type"]), ctx["type"])]
        for what, allowed in (("source", self.sources), ("vendor", self.vendors)):
            if allowed is not None:
                checks.append(
                    Check(f"{what} in [{', '.join(sorted(allowed))}]", ctx[what] in allowed, ctx[what])
                )
        if self.condition is not None:
            checks.append(self.condition.explain(ctx))
        return Check(f"rule {self.name}", all(c.held for c in checks), children=tuple(checks))

    def render(self, ctx: Context) -> list[Match]:
        """One Match per action, parameters rendered for this event."""
        variables = template_variables(ctx, self.name)
        gate_key = self.gate_key(variables)
        matches = []
        for action in self.actions:
            try:
                params, missing = action.render(variables)
            except PermanentError as exc:
                log.warning(
                    "rules.render_failed",
                    event_id=ctx["id"],
                    rule=self.name,
                    action=action.index,
                    error=str(exc),
                )
                matches.append(Match(ctx["id"], self, action, None, error=str(exc), gate_key=gate_key))
                continue
            if missing:
                log.warning(
                    "rules.template_missing",
                    event_id=ctx["id"],
                    rule=self.name,
                    action=action.index,
                    missing=list(missing),
                )
            matches.append(Match(ctx["id"], self, action, params, missing, gate_key=gate_key))
        return matches

    def gate_key(self, variables: Mapping[str, Any]) -> str | None:
        """The rendered throttle (else debounce) key for one event; None when the rule has neither.

        An empty template is one key for the whole rule. A key that cannot be rendered falls back to
        that one key too: holding back too much beats letting a flood through. A key longer than
        GATE_KEY_MAX characters is kept as its SHA-256."""
        gate = self.throttle or self.debounce
        if gate is None:
            return None
        try:
            text = gate.key.render(variables).text
        except PermanentError as exc:
            log.warning("rules.gate_key_failed", rule=self.name, error=str(exc))
            text = ""
        if len(text) > GATE_KEY_MAX:
            return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        return text


@dataclass(frozen=True)
class Match:
    """One action a rule takes for one event."""

    event_id: str
    rule: Rule
    action: Action
    params: BaseModel | None  # rendered; None when rendering failed (`error` says why)
    missing: tuple[str, ...] = ()  # template fields that were missing and rendered empty
    error: str | None = None
    gate_key: str | None = None  # the rule's rendered throttle / debounce key

    @property
    def idempotency_key(self) -> str:
        return f"{self.event_id}:{self.rule.name}:{self.action.index}"

    def stored_params(self) -> dict[str, Any] | None:
        """The rendered parameters as JSON without the secrets (they stay in the rule and its env):
        what an action run keeps, and what `hookyard rules test` shows."""
        if self.params is None:
            return None
        return self.params.model_dump(mode="json", exclude=set(marked(type(self.params), SECRET)))


@dataclass
class RuleSet:
    rules: tuple[Rule, ...]
    exact: dict[str, list[Rule]] = field(init=False, default_factory=dict)
    globs: list[tuple[str, Rule]] = field(init=False, default_factory=list)
    _candidates: dict[str, tuple[Rule, ...]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for rule in self.rules:
            for pattern in rule.types:
                if GLOB_CHARS.isdisjoint(pattern):
                    self.exact.setdefault(pattern, []).append(rule)
                else:
                    self.globs.append((pattern, rule))

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    def candidates(self, event_type: str) -> tuple[Rule, ...]:
        """The rules whose types include `event_type`, in rule order (remembered per type)."""
        found = self._candidates.get(event_type)
        if found is None:
            hits = {id(r) for r in self.exact.get(event_type, ())}
            hits.update(id(r) for pattern, r in self.globs if fnmatchcase(event_type, pattern))
            found = tuple(r for r in self.rules if id(r) in hits)
            if len(self._candidates) >= TYPE_CACHE_MAX:
                self._candidates.clear()
            self._candidates[event_type] = found
        return found

    def match(
        self,
        event: Envelope,
        records: Sequence[Record] = (),
        *,
        enabled: Callable[[Rule], bool] | None = None,
    ) -> list[Match]:
        """What the event sets off: one Match per action of each enabled rule that applies.

        `enabled` overrides each rule's own `enabled` (runtime flags); shadow rules are included,
        their caller records them instead of acting.
        """
        rules = self.candidates(event.type)
        if not rules:
            return []
        ctx = context(event, records)
        matches: list[Match] = []
        for rule in rules:
            if (rule.enabled if enabled is None else enabled(rule)) and rule.applies(ctx):
                matches.extend(rule.render(ctx))
        return matches
