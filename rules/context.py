"""What a rule sees of an event: a few roots, and dotted paths into them.

    id type source vendor dedupe_key occurred_at received_at   the envelope's values
    headers.<name>                                               request headers (lower-case names)
    payload.<key>.<key>…                                         the vendor's JSON, as stored
    records.<kind>.<field>…                                      the first record of that kind

Paths are checked when a rule is loaded: the root must exist, a record kind and its fields must
exist in `schemas.records`, and no path may go into a list (`payload.line_items.0.price`,
`records.ticket.tags.0`): positions in vendor arrays are not stable, so a rule tests a whole
list with `contains` instead. At run time a path that finds nothing, a null, or a list on the way
is "missing", which no condition but `exists = false` matches.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from pydantic import BaseModel

from schemas.envelope import Envelope
from schemas.records import Record

VALUES = ("id", "type", "source", "vendor", "dedupe_key", "occurred_at", "received_at")
ROOTS = (*VALUES, "headers", "payload", "records")

Context = Mapping[str, Any]
Path = tuple[str, ...]


def context(event: Envelope, records: Sequence[Record] = ()) -> dict[str, Any]:
    """The roots rules and templates see; `records` keeps the first record of each kind."""
    by_kind: dict[str, Record] = {}
    for record in records:
        by_kind.setdefault(record.kind, record)
    return {
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "vendor": event.vendor,
        "dedupe_key": event.dedupe_key,
        "occurred_at": event.occurred_at,
        "received_at": event.received_at,
        "headers": event.headers,
        "payload": event.payload,
        "records": by_kind,
    }


@cache
def record_kinds() -> dict[str, type[Record]]:
    """Every canonical record class, by kind."""
    found: dict[str, type[Record]] = {}
    pending = list(Record.__subclasses__())
    while pending:
        cls = pending.pop()
        found[cls.kind] = cls
        pending.extend(cls.__subclasses__())
    return dict(sorted(found.items()))


def _shape(annotation: Any) -> type[BaseModel] | str | None:
    """A field's type as a path sees it: a model to walk into, "list", or None for a plain value."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) in (list, tuple, set, frozenset) or annotation in (list, tuple):
        return "list"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def parse_path(text: str) -> Path:
    """Split and check a dotted path; raise ValueError saying what is wrong with it."""
    segments = tuple(text.split("."))
    if not all(segments):
        raise ValueError(f"{text!r} has an empty segment")
    root = segments[0]
    if root not in ROOTS:
        raise ValueError(f"{text!r} starts with {root!r}; a path starts with one of: {', '.join(ROOTS)}")
    index = next((s for s in segments if s.isdigit()), None)
    if index is not None:
        raise ValueError(
            f"{text!r} goes into a list at {index!r}; list positions are not supported, "
            f'test the whole list with op = "contains"'
        )
    if root in VALUES and len(segments) > 1:
        raise ValueError(f"{text!r}: {root!r} is a value, it has no fields")
    if root == "records":
        _check_record_path(text, segments[1:])
    return segments


def _check_record_path(text: str, rest: Path) -> None:
    kinds = record_kinds()
    if not rest:
        raise ValueError(f"{text!r} names no record kind; kinds: {', '.join(kinds)}")
    if rest[0] not in kinds:
        raise ValueError(f"{text!r}: no record kind {rest[0]!r}; kinds: {', '.join(kinds)}")
    shape: type[BaseModel] | str | None = kinds[rest[0]]
    walked = f"records.{rest[0]}"
    for segment in rest[1:]:
        if shape == "list":
            raise ValueError(
                f'{text!r} goes into a list at {walked!r}; test the whole list with op = "contains"'
            )
        if not isinstance(shape, type):
            raise ValueError(f"{text!r}: {walked!r} is a value, it has no fields")
        field = shape.model_fields.get(segment)
        if field is None:
            raise ValueError(
                f"{text!r}: {walked!r} has no field {segment!r}; fields: {', '.join(shape.model_fields)}"
            )
        shape = _shape(field.annotation)
        walked = f"{walked}.{segment}"


def resolve(ctx: Context, path: Path) -> Any:
    """The value at a checked path, or None when anything on the way is missing, null or a list."""
    value = ctx.get(path[0])
    for segment in path[1:]:
        if isinstance(value, dict):
            value = value.get(segment)
        elif isinstance(value, BaseModel):
            value = getattr(value, segment, None)
        else:
            return None
        if value is None:
            return None
    return value
