"""Try a rule before it goes live: on one event (`hookyard rules test`), or on the events already
stored (`hookyard rules simulate`). Both only read: nothing is recorded, posted, throttled or tagged.

Both evaluate exactly what a worker evaluates (the connector's records, the same conditions and
templates), ignoring `enabled`, runtime flags and `mode`: the question is what the rule would do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import Engine, and_, or_, select

from connectors import registry
from connectors.signing import lower_headers
from events.db import events
from events.dlq import set_path
from events.sources import Source
from rules.context import context
from rules.gates import Gates
from rules.ruleset import GLOB_CHARS, Rule
from schemas.envelope import Envelope
from schemas.errors import ConfigError, HookyardError

SIMULATE_BATCH = 500  # stored events read per query


def sample_event(source: Source, sets: Sequence[tuple[str, Any]], now: float) -> Envelope:
    """The connector's sample delivery for a source, edited by PATH=VALUE pairs, as the ingress would
    store it (the first event it carries)."""
    connector = registry.get(source.connector)
    request = connector.sample(source.secret_values()[0], now, source.options)
    body = request.body
    if sets:
        document = orjson.loads(body)
        for path, value in sets:
            document = set_path(document, path, value)
        body = orjson.dumps(document)
    headers = lower_headers(request.headers)
    parsed = connector.parse(body, headers, source.options)
    if not parsed.deliveries:
        raise ConfigError(f"the {source.connector} sample carries no event")
    first = parsed.deliveries[0]
    return Envelope(
        id="sample",
        source=source.name,
        vendor=source.connector,
        type=first.type,
        dedupe_key=first.dedupe_key,
        occurred_at=first.occurred_at,
        received_at=datetime.fromtimestamp(now, UTC),
        headers=headers,
        payload=first.payload,
    )


def file_event(path: Path, now: datetime) -> Envelope:
    """An event from a JSON file: what `hookyard events show ID --json` prints (source, vendor, type
    and payload are required; id, dedupe_key, headers and the times may be left out)."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read an event: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: an event is a JSON object")
    defaults = {"id": "file", "dedupe_key": "file", "received_at": now}
    try:
        return Envelope.model_validate({**defaults, **data})
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise ConfigError(f"{path}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def stored_event(engine: Engine, event_id: str) -> Envelope | None:
    with engine.connect() as conn:
        row = conn.execute(select(events).where(events.c.id == event_id)).first()
    return None if row is None or row.payload is None else Envelope.from_row(row)


def try_rule(rule: Rule, event: Envelope) -> dict[str, Any]:
    """Which tests held, and (if the rule matches) every action rendered, secrets left out."""
    try:
        items = registry.get(event.vendor).normalize(event)
    except (HookyardError, ValueError) as exc:
        return {"rule": rule.name, "matched": False, "error": f"the connector cannot read it: {exc}"}
    ctx = context(event, items)
    check = rule.explain(ctx)
    result: dict[str, Any] = {
        "rule": rule.name,
        "mode": rule.mode,
        "enabled": rule.enabled,
        "event": {"id": event.id, "source": event.source, "type": event.type},
        "records": sorted({r.kind for r in items}),
        "matched": check.held,
        "explain": check.lines(),
        "actions": [],
    }
    if check.held:
        matches = rule.render(ctx)
        result["gate_key"] = matches[0].gate_key if matches else None
        result["actions"] = [
            {
                "index": m.action.index,
                "type": m.action.type,
                "params": m.stored_params(),
                "missing": list(m.missing),
                "error": m.error,
            }
            for m in matches
        ]
    return result


def _candidates(rule: Rule, since: datetime, until: datetime | None) -> Any:
    """Stored events that can match: the rule's exact types (any type if it has a glob), its
    sources and vendors, in the time range, with a payload (a purged dead letter has none)."""
    clauses = [events.c.received_at >= since, events.c.payload.is_not(None)]
    if until is not None:
        clauses.append(events.c.received_at < until)
    if all(GLOB_CHARS.isdisjoint(t) for t in rule.types):
        clauses.append(events.c.type.in_(rule.types))
    if rule.sources is not None:
        clauses.append(events.c.source.in_(sorted(rule.sources)))
    if rule.vendors is not None:
        clauses.append(events.c.vendor.in_(sorted(rule.vendors)))
    return and_(*clauses)


def _stored(engine: Engine, where: Any, batch: int) -> Iterator[Any]:
    """Rows in arrival order, `batch` at a time (keyset on received_at, id): a week of events is never
    in memory at once."""
    after: tuple[datetime, str] | None = None
    with engine.connect() as conn:
        while True:
            stmt = select(events).where(where)
            if after is not None:
                stmt = stmt.where(
                    or_(
                        events.c.received_at > after[0],
                        and_(events.c.received_at == after[0], events.c.id > after[1]),
                    )
                )
            rows = list(conn.execute(stmt.order_by(events.c.received_at, events.c.id).limit(batch)))
            if not rows:
                return
            yield from rows
            after = (rows[-1].received_at, rows[-1].id)


def simulate(
    engine: Engine,
    rule: Rule,
    *,
    since: datetime,
    until: datetime | None = None,
    sample: int = 5,
    batch: int = SIMULATE_BATCH,
) -> dict[str, Any]:
    """How many stored events the rule would match (and fire for, after its throttle), with a sample."""
    scanned = matched = throttled = unreadable = 0
    by_type: Counter[str] = Counter()
    picked: list[dict[str, Any]] = []
    gates = Gates()
    for row in _stored(engine, _candidates(rule, since, until), batch):
        if not rule.handles(row.type):
            continue
        scanned += 1
        envelope = Envelope.from_row(row)
        try:
            items = registry.get(row.vendor).normalize(envelope)
        except (HookyardError, ValueError):
            unreadable += 1
            continue
        ctx = context(envelope, items)
        if not rule.applies(ctx):
            continue
        matched += 1
        by_type[row.type] += 1
        matches = rule.render(ctx)
        key = matches[0].gate_key if matches else None
        if key is not None and not gates.admit(rule, key, row.received_at.timestamp()):
            throttled += 1
        if len(picked) < sample:
            actions = [{"type": m.action.type, "params": m.stored_params()} for m in matches]
            picked.append(
                {
                    "event_id": row.id,
                    "type": row.type,
                    "received_at": row.received_at.isoformat(),
                    "actions": actions,
                }
            )
    return {
        "rule": rule.name,
        "since": since.isoformat(),
        "until": until.isoformat() if until else None,
        "scanned": scanned,
        "matched": matched,
        "throttled": throttled,
        "would_fire": matched - throttled,
        "unreadable": unreadable,
        "by_type": dict(by_type),
        "sample": picked,
    }
