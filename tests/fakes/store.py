"""The fakes' in-memory data: records, opaque cursors, keyset pages and time formats.

A record keeps three times. `created` and `updated` are what the vendor shows. `stream` is the
record's place in incremental feeds (Zendesk's `generated_timestamp`): it equals `updated` for
seeded data and becomes "now" on every change, so a changed record moves to the end of a feed
even when a mutation gives it an older `updated` (the out-of-order case clients must dedupe).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class Record:
    collection: str
    id: int
    created: float
    updated: float
    stream: float
    attrs: dict[str, Any] = field(default_factory=dict)
    key: str = ""  # the vendor's string id, where it has one (Stripe "ch_…", Klaviyo ids)
    deleted: bool = False


@dataclass
class Store:
    tables: dict[str, dict[int, Record]] = field(default_factory=dict)
    keys: dict[str, Record] = field(default_factory=dict)
    next_ids: dict[str, int] = field(default_factory=dict)

    def add(
        self, collection: str, created: float, updated: float, stream: float, first_id: int = 1
    ) -> Record:
        record_id = self.next_ids.get(collection, first_id)
        self.next_ids[collection] = record_id + 1
        record = Record(collection, record_id, float(created), float(updated), float(stream))
        self.tables.setdefault(collection, {})[record_id] = record
        return record

    def name(self, record: Record, key: str) -> None:
        record.key = key
        self.keys[key] = record

    def get(self, collection: str, record_id: int) -> Record | None:
        return self.tables.get(collection, {}).get(record_id)

    def find(self, collection: str, key: str) -> Record | None:
        record = self.keys.get(key)
        return record if record is not None and record.collection == collection else None

    def rows(self, collection: str, *, deleted: bool = False) -> list[Record]:
        """The collection in id order; deleted records only when asked for."""
        return [r for r in self.tables.get(collection, {}).values() if deleted or not r.deleted]


def keyset(
    records: Sequence[Record],
    sort_key: Callable[[Record], tuple[Any, ...]],
    after: tuple[Any, ...] | None,
    limit: int,
    descending: bool = False,
) -> tuple[list[Record], bool]:
    """One page of `records` ordered by `sort_key`, strictly after the `after` position; and whether
    more follow. Positions are values, not offsets, so changes between pages never shift a page."""
    ordered = sorted(records, key=sort_key, reverse=descending)
    if after is not None:
        ordered = [r for r in ordered if (sort_key(r) < after if descending else sort_key(r) > after)]
    return ordered[:limit], len(ordered) > limit


def encode_cursor(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str) -> dict[str, Any] | None:
    """The position a cursor encodes, or None when it is not one of ours."""
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return position if isinstance(position, dict) else None


def iso(ts: float, zulu: bool = True) -> str:
    """Unix seconds as ISO-8601 in UTC, to the second: `…Z` or `…+00:00`."""
    text = datetime.fromtimestamp(int(ts), UTC).isoformat()
    return text.replace("+00:00", "Z") if zulu else text


def to_unix(value: Any) -> float:
    """Unix seconds from a number or an ISO-8601 string (ValueError otherwise)."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    raise ValueError(f"not a time: {value!r}")
