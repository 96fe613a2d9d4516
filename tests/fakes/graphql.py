"""Just enough GraphQL for the Shopify fake: one query operation with variables, fields with
aliases and arguments, nested selections. No fragments, directives are skipped, no mutations."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

TOKEN = re.compile(
    r"""(?P<skip>[\s,]+|\#[^\n]*)
      | (?P<block>\"\"\"(?:[^"\\]|\\.|"(?!""))*\"\"\")
      | (?P<string>"(?:[^"\\\n]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
      | (?P<punct>\.\.\.|[{}():$!=\[\]@])""",
    re.VERBOSE,
)


class GraphQLError(ValueError):
    """The query cannot be parsed or does not fit the schema."""


@dataclass
class Field:
    name: str
    alias: str
    args: dict[str, Any] = field(default_factory=dict)
    selections: list[Field] = field(default_factory=list)


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if match is None:
            raise GraphQLError(f"syntax error at offset {pos}: unexpected {text[pos]!r}")
        pos = match.end()
        kind = match.lastgroup or ""
        if kind != "skip":
            tokens.append((kind, match.group()))
    return tokens


class Parser:
    def __init__(self, text: str, variables: dict[str, Any]) -> None:
        self.tokens = tokenize(text)
        self.pos = 0
        self.variables = dict(variables)
        self.declared: set[str] = set()

    def peek(self) -> str:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else ""

    def next(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise GraphQLError("syntax error: unexpected end of document")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def expect(self, text: str) -> None:
        kind, value = self.next()
        if value != text:
            raise GraphQLError(f"syntax error: expected {text!r}, got {value!r}")

    def document(self) -> list[Field]:
        if self.peek() in ("mutation", "subscription"):
            raise GraphQLError(f"the fake answers queries only, not a {self.peek()}")
        if self.peek() == "query":
            self.next()
            if self.tokens[self.pos][0] == "name":
                self.next()
            if self.peek() == "(":
                self.variable_definitions()
        selections = self.selection_set()
        if self.pos != len(self.tokens):
            raise GraphQLError("the fake answers one operation per document (no fragments)")
        return selections

    def variable_definitions(self) -> None:
        self.expect("(")
        while self.peek() != ")":
            self.expect("$")
            name = self.next()[1]
            self.declared.add(name)
            self.expect(":")
            while self.peek() not in ("=", ")", "$"):
                self.next()  # the type: names, brackets and "!"
            if self.peek() == "=":
                self.next()
                default = self.value()
                self.variables.setdefault(name, default)
        self.expect(")")

    def selection_set(self) -> list[Field]:
        self.expect("{")
        selections = []
        while self.peek() != "}":
            if self.peek() == "...":
                raise GraphQLError("the fake does not support fragments")
            selections.append(self.field())
        self.expect("}")
        return selections

    def field(self) -> Field:
        kind, name = self.next()
        if kind != "name":
            raise GraphQLError(f"syntax error: expected a field name, got {name!r}")
        alias = name
        if self.peek() == ":":
            self.next()
            name = self.next()[1]
        result = Field(name, alias)
        if self.peek() == "(":
            self.next()
            while self.peek() != ")":
                arg = self.next()[1]
                self.expect(":")
                result.args[arg] = self.value()
            self.expect(")")
        while self.peek() == "@":  # directives: parsed and ignored
            self.next()
            self.next()
            if self.peek() == "(":
                while self.next()[1] != ")":
                    pass
        if self.peek() == "{":
            result.selections = self.selection_set()
        return result

    def value(self) -> Any:
        kind, text = self.next()
        if text == "$":
            name = self.next()[1]
            if name not in self.declared:
                raise GraphQLError(f"Variable ${name} is used but not declared")
            return self.variables.get(name)
        if kind == "string":
            return json.loads(text)
        if kind == "block":
            return text[3:-3].strip()
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if text == "[":
            items = []
            while self.peek() != "]":
                items.append(self.value())
            self.next()
            return items
        if text == "{":
            obj = {}
            while self.peek() != "}":
                key = self.next()[1]
                self.expect(":")
                obj[key] = self.value()
            self.next()
            return obj
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(text, text)  # else an enum value
        raise GraphQLError(f"syntax error: unexpected {text!r}")


def parse(query: str, variables: dict[str, Any] | None = None) -> list[Field]:
    """The top-level fields of a query document, with variables substituted."""
    return Parser(query, variables or {}).document()
