"""Templates in rule actions: Jinja2 in its immutable sandbox, compiled when the rule is loaded.

- Syntax errors, a name that is not a context root (`recods.order`) and any attribute or key that
  starts with "_" (`''.__class__`) are refused at load. At render time the sandbox refuses what a
  static check cannot see (`|attr('__class__')`, mutating `payload`), and `*` / `**` may not build
  huge strings or numbers.
- A missing field renders as empty and is reported (`Rendered.missing`), because vendors leave
  optional fields out; a null renders as empty silently.
- Output is cut at TEMPLATE_MAX_CHARS, ending with CUT_MARKER; rendering stops there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context as JinjaContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel

from rules.constants import CUT_MARKER, TEMPLATE_MAX_CHARS, TEMPLATE_MAX_POWER
from rules.context import ROOTS
from schemas.errors import PermanentError
from schemas.records import Money

VARIABLES = (*ROOTS, "rule")  # what a template may name: the context roots and the rule's name

_missing: ContextVar[list[str] | None] = ContextVar("rules_template_missing", default=None)


class _Missing(ChainableUndefined):
    """Renders as empty and notes what was missing; a sandbox refusal still raises."""

    __slots__ = ()

    def __str__(self) -> str:
        if issubclass(self._undefined_exception, SecurityError):
            self._fail_with_undefined_error()
        noted = _missing.get()
        if noted is not None:
            noted.append(f"no {self._undefined_name!r}" if self._undefined_name else self._undefined_message)
        return ""


def _money(value: Any) -> Any:
    """`{{ records.order.total|money }}` → "500.00 USD"."""
    return f"{value.amount} {value.currency}" if isinstance(value, Money) else value


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`a.b` on JSON reads the key b (even one named `items`); on a record, its field b.

        Data, never methods, so the sandbox's attribute checks are not needed on these two paths;
        anything else (a method, a key that is not there) goes through them as usual.
        """
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        if isinstance(obj, BaseModel) and attribute in type(obj).model_fields:
            return getattr(obj, attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: JinjaContext, op: str, left: Any, right: Any) -> Any:
        """Refuse `'x' * 10**9` and `9 ** 9 ** 9` before they are built."""
        if op == "**" and isinstance(right, int | float) and abs(right) > TEMPLATE_MAX_POWER:
            raise SecurityError(f"exponent {right} is over {TEMPLATE_MAX_POWER}")
        if op == "*":
            sized, count = (left, right) if isinstance(right, int) else (right, left)
            if (
                isinstance(sized, str | list | tuple)
                and isinstance(count, int)
                and len(sized) * count > TEMPLATE_MAX_CHARS
            ):
                raise SecurityError(f"{count} copies of a {len(sized)}-long value exceed the output limit")
        return super().call_binop(context, op, left, right)


def _environment() -> _Sandbox:
    env = _Sandbox(
        undefined=_Missing, finalize=lambda value: "" if value is None else value, autoescape=False
    )
    del env.globals["lipsum"]  # random text: a retried action must render the same
    env.filters["money"] = _money
    return env


_ENV = _environment()


def variables(ctx: Mapping[str, Any], rule: str) -> dict[str, Any]:
    """What templates render with: the event's context roots, the rule's name and Jinja's globals.

    Built once per rule and event, and handed to Jinja as its context as it is (a shared context),
    which spares each render a copy of the globals: most of a short template's cost.
    """
    return {**_ENV.globals, **ctx, "rule": rule}


@dataclass(frozen=True)
class Rendered:
    text: str
    missing: tuple[str, ...] = ()  # one line per missing field that rendered as empty


class Template:
    """One compiled template; `render` is pure given the context."""

    __slots__ = ("source", "_render")

    def __init__(self, source: str) -> None:
        self.source = source
        self._render: Callable[[Mapping[str, Any], int], str] | None = None
        if "{" in source:
            self._render = _compile(source)

    def render(self, variables: Mapping[str, Any], max_chars: int = TEMPLATE_MAX_CHARS) -> Rendered:
        """Render with `variables()`, cut at `max_chars`; PermanentError when the sandbox refuses."""
        if self._render is None:
            return Rendered(_cut(self.source, max_chars))
        noted: list[str] = []
        token = _missing.set(noted)
        try:
            text = self._render(variables, max_chars)
        except (TemplateError, ArithmeticError, TypeError, ValueError) as exc:
            raise PermanentError(f"template {self.source[:60]!r}: {exc}") from None
        finally:
            _missing.reset(token)
        return Rendered(_cut(text, max_chars), tuple(noted))


def _cut(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - len(CUT_MARKER)] + CUT_MARKER


def _compile(source: str) -> Callable[[Mapping[str, Any], int], str]:
    try:
        tree = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error, line {exc.lineno}: {exc.message}") from None
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = (
            node.attr
            if isinstance(node, nodes.Getattr)
            else getattr(getattr(node, "arg", None), "value", None)
        )
        if isinstance(name, str) and name.startswith("_"):
            raise ValueError(f"template refuses {name!r}: names starting with '_' are off limits")
    unknown = sorted(meta.find_undeclared_variables(tree) - set(VARIABLES))
    if unknown:
        raise ValueError(f"template uses unknown name {unknown[0]!r}; names: {', '.join(VARIABLES)}")
    template = _ENV.from_string(tree)

    def render(variables: Mapping[str, Any], max_chars: int) -> str:
        parts: list[str] = []
        size = 0
        for chunk in template.root_render_func(template.new_context(dict(variables), shared=True)):
            parts.append(chunk)
            size += len(chunk)
            if size > max_chars:
                break  # the rest would be cut anyway: stop rendering
        return "".join(parts)

    return render
