"""Storing one synced page, inside the caller's checkpoint transaction: the records through the
upsert webhooks use (workers.processing._upsert), the rejected items into quarantine, and the counts.

Each record is judged against the stored row before it is written:

| the stored row                    | written                   | counted as                           |
|-----------------------------------|---------------------------|--------------------------------------|
| none, or older (`updated_at`)     | yes                       | changed                              |
| the same version, from a webhook  | no                        | changed and covered                  |
| the same version, from a sync     | only if the data differ   | changed if written (a same-second change) |
| newer                             | never                     | stale (and covered if a webhook wrote it) |
| no `updated_at` on either side   | a webhook's copy is kept; a sync's when the data differ | as above |

A fetch (`whole`: one object read because an event named it) is the API's whole copy of the object
as it is now: at the same version, or with no `updated_at` to compare, it replaces a webhook's copy
(which may be partial) when the data differ; it is counted like a sync's.

*Coverage* is covered ÷ changed: of what the sync found new, the share webhooks had delivered first.
The upsert's own guard (an older timestamp never wins) still holds if a webhook writes between the
read and the write; `RETURNING` says which rows were really written, and a write the guard refused
counts as stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, tuple_

from connectors.streams import Page, Rejected, field_errors, item_key
from events.db import dialect_insert, quarantine, records
from schemas.errors import InvalidPayload
from schemas.records import Record
from workers.processing import _check_key, _upsert

READ_CHUNK = 500  # keys per SELECT of the stored rows


@dataclass
class Counts:
    records: int = 0  # valid records read
    applied: int = 0
    stale: int = 0
    quarantined: int = 0
    changed: int = 0
    covered: int = 0

    def add(self, other: Counts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def values(self) -> dict[str, int]:
        return asdict(self)


Key = tuple[str, str]


def _latest(items: Sequence[Record]) -> dict[Key, Record]:
    """One record per key (the newest; on a tie the later one), so one statement writes each once."""
    latest: dict[Key, Record] = {}
    for record in items:
        key = (record.kind, record.external_id)
        held = latest.get(key)
        if (
            held is None
            or held.updated_at is None
            or record.updated_at is None
            or record.updated_at >= held.updated_at
        ):
            latest[key] = record
    return latest


def _stored(conn: Connection, vendor: str, keys: list[Key]) -> dict[Key, Any]:
    found: dict[Key, Any] = {}
    for start in range(0, len(keys), READ_CHUNK):
        chunk = keys[start : start + READ_CHUNK]
        rows = conn.execute(
            select(
                records.c.kind,
                records.c.external_id,
                records.c.updated_at,
                records.c.event_id,
                records.c.data,
            ).where(records.c.vendor == vendor, tuple_(records.c.kind, records.c.external_id).in_(chunk))
        )
        found.update({(r.kind, r.external_id): r for r in rows})
    return found


def judge(record: Record, row: Any, counts: Counts, *, whole: bool = False) -> bool:
    """Count the record against the stored row (see the table above); whether to write it."""
    if row is None:
        counts.changed += 1
        return True
    by_webhook = row.event_id is not None
    if record.updated_at is None or row.updated_at is None:
        if by_webhook:
            counts.changed += 1
            counts.covered += 1
            return whole and bool(row.data != record.data())
        differs = bool(row.data != record.data())
        counts.changed += differs
        return differs
    if record.updated_at > row.updated_at:
        counts.changed += 1
        return True
    if record.updated_at < row.updated_at:
        counts.stale += 1
    if by_webhook:
        counts.changed += 1
        counts.covered += 1
        return whole and record.updated_at == row.updated_at and bool(row.data != record.data())
    same_second_change = bool(record.updated_at == row.updated_at and row.data != record.data())
    counts.changed += same_second_change
    return same_second_change


def store_page(
    conn: Connection,
    *,
    vendor: str,
    source: str,
    stream: str,
    run_id: str,
    page: Page,
    now: datetime,
    whole: bool = False,
) -> Counts:
    """Write one page's records and quarantined items; the counts for the run. `whole`: the page is
    one object a fetch read (see the table above)."""
    rejected = list(page.rejected)
    kept: list[Record] = []
    for record in page.records:
        try:
            _check_key(record)
        except InvalidPayload as exc:
            rejected.append(
                Rejected(item_key(record.data(), "external_id"), record.data(), field_errors(exc))
            )
        else:
            kept.append(record)
    counts = Counts(records=len(kept))
    latest = _latest(kept)
    stored = _stored(conn, vendor, list(latest))
    writes = [
        {
            "vendor": vendor,
            "kind": record.kind,
            "external_id": record.external_id,
            "data": record.data(),
            "updated_at": record.updated_at,
            "event_id": None,
            "run_id": run_id,
            "version": 1,
        }
        for key, record in latest.items()
        if judge(record, stored.get(key), counts, whole=whole)
    ]
    if writes:
        statement = _upsert(conn.dialect.name).returning(records.c.kind)
        counts.applied = len(conn.execute(statement, writes).all())
        counts.stale += len(writes) - counts.applied
    counts.quarantined = len(rejected)
    _quarantine(conn, vendor, source, stream, run_id, rejected, now)
    return counts


def _quarantine(
    conn: Connection,
    vendor: str,
    source: str,
    stream: str,
    run_id: str,
    rejected: list[Rejected],
    now: datetime,
) -> None:
    """Keep each refused item with its field errors, once per (source, stream, item): seen again,
    it is counted and its latest copy kept."""
    unique = {item.key: item for item in rejected}
    if not unique:
        return
    insert = dialect_insert(conn.dialect.name)(quarantine)
    statement = insert.on_conflict_do_update(
        index_elements=["source", "stream", "item_key"],
        set_={
            "errors": insert.excluded.errors,
            "item": insert.excluded.item,
            "run_id": insert.excluded.run_id,
            "last_seen_at": insert.excluded.last_seen_at,
            "seen": quarantine.c.seen + 1,
        },
    )
    conn.execute(
        statement,
        [
            {
                "source": source,
                "stream": stream,
                "vendor": vendor,
                "item_key": key,
                "run_id": run_id,
                "errors": item.errors,
                "item": item.item,
                "first_seen_at": now,
                "last_seen_at": now,
                "seen": 1,
            }
            for key, item in unique.items()
        ],
    )
