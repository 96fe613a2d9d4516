"""Rules at work: record what a processed event sets off, in the transaction that marks it done.

For each event the worker finishes, the current rules (RulesWatcher) and runtime flags decide which
rules match; each action of each match becomes one `action_runs` row under its idempotency key
(event:rule:action index), inserted in the same transaction that marks the event done. So an event
is never done without its actions recorded, and since only the worker whose fenced finish succeeded
records them, a redelivery or a replay never records them twice (the unique key would refuse it
anyway). The new ids are published to the actions queue after commit; the relay covers a lost
publish.

What a match becomes:
    shadow rule                  `shadow`: recorded, never run
    over the rule's throttle     `throttled`: recorded, never run
    debounced rule               `pending` after `wait`; a later match of the same key replaces it
                                 (`debounced`)
    rendering failed             `dead` (a dead letter: fix the rule, then replay it)
    otherwise                    `pending`, published now

A throttle or debounce is decided on its `rule_gates` row, locked (PostgreSQL: FOR UPDATE; SQLite
has one writer) in this transaction: exact across workers, with no Redis.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, select, update

from events.db import ActionState, action_runs, dialect_insert, rule_gates
from events.queue import publish_actions
from events.runtime_flags import FlagCache
from rules import gates
from rules.actions import EVENT_TAG, EventTag
from rules.metrics import FAILED, FIRED, MATCHED, RULE_MATCHES, SHADOW, THROTTLED
from rules.ruleset import Match, Rule, RuleSet
from schemas.envelope import Envelope
from schemas.records import Record
from workers.actions import Outcome, history_entry
from workers.executors import tag_names, write_tags

log = structlog.get_logger()


@dataclass
class Recorded:
    """What one transaction recorded: runs to publish after commit, and (rule, outcome) counts."""

    publish: list[str] = field(default_factory=list)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass
class _Firing:
    """The actions of one rule for one event, decided together."""

    rule: Rule
    event: Any  # the events row
    matches: list[Match]
    state: str = ActionState.PENDING
    available_at: datetime | None = None


class Automation:
    def __init__(
        self,
        rules: Callable[[], RuleSet],
        flags: FlagCache,
        *,
        relay_grace_s: float,
        publish: Callable[[list[str]], int] = publish_actions,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.rules = rules
        self.flags = flags
        self.relay_grace_s = relay_grace_s
        self._publish = publish
        self._new_id = new_id

    def record(
        self, conn: Connection, done: Sequence[tuple[Any, Sequence[Record]]], now: datetime
    ) -> Recorded:
        """Match the events just marked done (rows and their records) and record their actions."""
        ruleset = self.rules()
        candidates = [(row, items) for row, items in done if ruleset.candidates(row.type)]
        if not candidates:
            return Recorded()
        flags = self.flags.get(conn)
        firings: list[_Firing] = []
        for row, items in candidates:
            if not flags.source_on(row.source):
                continue
            found = ruleset.match(
                Envelope.from_row(row), items, enabled=lambda rule: flags.rule_on(rule.name, rule.enabled)
            )
            by_rule: dict[str, list[Match]] = defaultdict(list)
            for match in found:
                by_rule[match.rule.name].append(match)
            firings.extend(_Firing(ms[0].rule, row, ms) for ms in by_rule.values())
        if not firings:
            return Recorded()
        recorded = Recorded()
        self._gate(conn, firings, now, recorded)
        self._insert(conn, firings, now, recorded)
        return recorded

    def settle(self, recorded: Recorded) -> None:
        """After commit: count, and publish what is due now (a failed publish is the relay's job)."""
        for (rule, outcome), n in recorded.counts.items():
            RULE_MATCHES.labels(rule, outcome).inc(n)
        if not recorded.publish:
            return
        try:
            self._publish(recorded.publish)
        except Exception as exc:
            log.warning(
                "actions.publish_failed", error=repr(exc), runs=len(recorded.publish), detail="the relay will"
            )

    def _gate(self, conn: Connection, firings: list[_Firing], now: datetime, recorded: Recorded) -> None:
        """Decide shadow, throttle and debounce; gate rows are taken in (rule, key) order, so two
        workers locking the same rows never wait on each other in a circle."""
        gated: dict[tuple[str, str], list[_Firing]] = defaultdict(list)
        for firing in firings:
            rule = firing.rule
            if rule.mode == "shadow":
                firing.state = ActionState.SHADOW
                recorded.counts[(rule.name, SHADOW)] += 1
                continue
            recorded.counts[(rule.name, MATCHED)] += 1
            key = firing.matches[0].gate_key
            if key is not None:
                gated[(rule.name, key)].append(firing)
        for (rule_name, key), group in sorted(gated.items(), key=lambda item: item[0]):
            fired = _lock_gate(conn, rule_name, key, now)
            rule = group[0].rule
            if rule.throttle is not None:
                for firing in group:
                    fired, allowed = gates.admit(
                        fired, now.timestamp(), rule.throttle.per_s, rule.throttle.max
                    )
                    if not allowed:
                        firing.state = ActionState.THROTTLED
                        recorded.counts[(rule_name, THROTTLED)] += 1
                conn.execute(
                    update(rule_gates)
                    .where(rule_gates.c.rule == rule_name, rule_gates.c.key == key)
                    .values(fired=fired, updated_at=now)
                )
            elif rule.debounce is not None:
                superseded = conn.execute(
                    update(action_runs)
                    .where(
                        action_runs.c.rule == rule_name,
                        action_runs.c.gate_key == key,
                        action_runs.c.state == ActionState.PENDING,
                    )
                    .values(state=ActionState.DEBOUNCED)
                    .returning(action_runs.c.event_id)
                )
                replaced = len({r.event_id for r in superseded}) + len(group) - 1
                recorded.counts[(rule_name, THROTTLED)] += replaced
                for firing in group[:-1]:
                    firing.state = ActionState.DEBOUNCED
                group[-1].available_at = now + timedelta(seconds=rule.debounce.wait_s)

    def _insert(self, conn: Connection, firings: list[_Firing], now: datetime, recorded: Recorded) -> None:
        rows = []
        tags: list[dict[str, Any]] = []
        for firing in firings:
            for match in firing.matches:
                state = firing.state
                if state == ActionState.PENDING and match.error is not None:
                    state = ActionState.DEAD
                due = firing.available_at or now
                # published now: the relay steps in only if that publish is lost; a debounce: when due
                relay_at = due if firing.available_at else now + timedelta(seconds=self.relay_grace_s)
                rows.append(
                    {
                        "id": self._new_id(),
                        "idempotency_key": match.idempotency_key,
                        "event_id": firing.event.id,
                        "source": firing.event.source,
                        "vendor": firing.event.vendor,
                        "rule": firing.rule.name,
                        "action_index": match.action.index,
                        "action_type": match.action.type,
                        "params": match.stored_params(),
                        "gate_key": match.gate_key,
                        "state": state,
                        "attempts": 0,
                        "attempts_before_replay": 0,
                        "throttled_tries": 0,
                        "created_at": now,
                        "available_at": due,
                        "relay_at": relay_at,
                        "relayed": 0,
                        "finished_at": now if state == ActionState.DEAD else None,
                        "error_class": "PermanentError" if state == ActionState.DEAD else None,
                        "last_error": match.error if state == ActionState.DEAD else None,
                        "result": None,
                        "history": [],
                        "replays": 0,
                    }
                )
                if state == ActionState.PENDING and not firing.available_at:
                    _inline(rows[-1], match, now, tags)
        # One executemany, no RETURNING (psycopg pipelines it; a multi-row RETURNING insert is parsed
        # anew for every batch size). The key cannot already exist (only the worker whose fenced
        # finish succeeded gets here); if it did, the row is left alone and the id published for
        # nothing is skipped by the claim.
        stmt = dialect_insert(conn.dialect.name)(action_runs).on_conflict_do_nothing(
            index_elements=["idempotency_key"]
        )
        conn.execute(stmt, rows)
        write_tags(conn, tags)
        for row in rows:
            if row["state"] == ActionState.PENDING and row["available_at"] <= now:
                recorded.publish.append(row["id"])
            elif row["state"] == ActionState.DONE:
                recorded.counts[(row["rule"], FIRED)] += 1
            elif row["state"] == ActionState.DEAD:
                recorded.counts[(row["rule"], FAILED)] += 1
                log.warning(
                    "action.render_failed", run_id=row["id"], rule=row["rule"], error=row["last_error"]
                )


def _inline(row: dict[str, Any], match: Match, now: datetime, tags: list[dict[str, Any]]) -> None:
    """`event.tag` runs here, in the transaction that records it (and marks its event done): it is
    a write to this database, so the run is recorded `done` with its tags, and no message, claim or
    second transaction is spent on it. Exactly once as before: the tags commit with the `done`."""
    if not isinstance(match.params, EventTag) or match.action.type != EVENT_TAG.name:
        return
    names = tag_names(match.params)
    row.update(
        state=ActionState.DONE,
        attempts=1,
        finished_at=now,
        result={"tags": names},
        history=[history_entry(1, now, now, Outcome.DONE)],
    )
    tags.extend({"event_id": row["event_id"], "tag": name, "created_at": now} for name in names)


def _lock_gate(conn: Connection, rule: str, key: str, now: datetime) -> list[float]:
    """The gate's firing times, its row created if new and locked until this transaction ends."""
    insert = dialect_insert(conn.dialect.name)(rule_gates).values(
        rule=rule, key=key, fired=[], updated_at=now
    )
    conn.execute(insert.on_conflict_do_nothing(index_elements=["rule", "key"]))
    stmt = select(rule_gates.c.fired).where(rule_gates.c.rule == rule, rule_gates.c.key == key)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return [float(t) for t in conn.execute(stmt).scalar_one()]
