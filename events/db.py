"""Tables and engines. The database is the source of truth; the broker only carries event ids.

Event states: accepted → processing → done, or → retry → processing …, or → dead (→ accepted again
on replay, or → purged).
`available_at` gates claiming (a lease or a retry's due time); `relay_at` is when the relay
republishes an unfinished event whose message may have been lost.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


class EventState(StrEnum):
    """Where an event is in its life; the `events.state` column holds these values."""

    ACCEPTED = "accepted"  # stored, waiting for a worker
    PROCESSING = "processing"  # leased by a worker until `available_at`
    RETRY = "retry"  # failed, waiting in the database until `available_at`
    DONE = "done"
    DEAD = "dead"  # a dead letter waits for an operator
    PURGED = "purged"  # a dead letter an operator deleted; the row stays so redeliveries stay duplicates


UNFINISHED = (EventState.ACCEPTED, EventState.PROCESSING, EventState.RETRY)


class LetterState(StrEnum):
    """A dead letter's state (`dead_letters.state`)."""

    DEAD = "dead"
    REPLAYED = "replayed"


class AttemptOutcome(StrEnum):
    """How one attempt ended (`attempts.outcome`)."""

    DONE = "done"
    RETRY = "retry"
    DEAD = "dead"
    LEASE_EXPIRED = "lease_expired"  # the worker died holding the lease; recorded by the next claimer


class ActionState(StrEnum):
    """Where an action run is (`action_runs.state`): pending → running → done, or → retry → running …,
    or → dead (→ pending again on replay). Shadow, throttled and debounced runs never run."""

    PENDING = "pending"  # recorded; runs once `available_at` has come (a debounce waits there)
    RUNNING = "running"  # leased by a worker until `available_at`
    RETRY = "retry"  # failed, waiting in the database until `available_at`
    DONE = "done"
    DEAD = "dead"  # a dead letter (`hookyard dlq list --kind actions`)
    SHADOW = "shadow"  # the rule is in shadow mode: what it would have done, never done
    THROTTLED = "throttled"  # over the rule's throttle when it matched
    DEBOUNCED = "debounced"  # superseded by a later match of the same debounce key


ACTION_UNFINISHED = (ActionState.PENDING, ActionState.RUNNING, ActionState.RETRY)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on PostgreSQL and SQLite alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("source", String(100), nullable=False),
    Column("vendor", String(50), nullable=False),
    Column("type", String(200), nullable=False),
    Column("dedupe_key", String(500), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),  # every attempt ever, replays included
    Column("attempts_before_replay", Integer, nullable=False, default=0, server_default="0"),
    Column("received_at", UTCDateTime, nullable=False),
    Column("occurred_at", UTCDateTime),
    Column("available_at", UTCDateTime, nullable=False),
    Column("relay_at", UTCDateTime, nullable=False),
    Column("relayed", Integer, nullable=False, default=0),
    Column("lease_token", String(36)),
    Column("processed_at", UTCDateTime),
    Column("last_error", Text),
    Column("headers", JSON, nullable=False),
    Column("body", LargeBinary, nullable=False),  # the raw request, byte-exact
    Column("payload", JSON),  # what the connector carved out: the body, a batch item, a form field
    # the replay guard: a body already received (hash + position in its request) is a duplicate too
    Column("body_key", String(80)),
    UniqueConstraint("source", "dedupe_key", name="uq_events_source_dedupe"),
    UniqueConstraint("source", "body_key", name="uq_events_source_body"),
    Index("ix_events_relay", "state", "relay_at"),
    Index("ix_events_received", "received_at"),
)

records = Table(
    "records",
    metadata,
    Column("vendor", String(50), primary_key=True),
    Column("kind", String(50), primary_key=True),
    Column("external_id", String(200), primary_key=True),
    Column("data", JSON, nullable=False),
    Column("updated_at", UTCDateTime),
    Column("event_id", String(36)),  # the event that last changed it (None: a sync did)
    Column("version", Integer, nullable=False),  # how many events (and sync runs) changed it
    Column("run_id", String(36)),  # the sync run that last changed it (None: an event did)
)


attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, index=True),
    Column("number", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("duration_ms", Integer),  # None when the worker died holding the lease
    Column("outcome", String(16), nullable=False),  # AttemptOutcome
    Column("error_class", String(200)),
    Column("error_message", Text),
    Index("ix_attempts_started", "started_at"),  # the monitor reads the last hour's attempts
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("source", String(100), nullable=False),
    Column("vendor", String(50), nullable=False),
    Column("type", String(200), nullable=False),
    Column("task", String(200), nullable=False),
    Column("args", JSON, nullable=False),
    Column("error_class", String(200), nullable=False),
    Column("error_message", Text, nullable=False),
    Column("traceback", Text),
    Column("attempts", Integer, nullable=False),
    Column("died_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),  # LetterState
    Column("replays", Integer, nullable=False, default=0),
    Column("replayed_at", UTCDateTime),
    Column("original_payload", JSON),  # the payload before the first edit
    Column("edited_at", UTCDateTime),
    Index("ix_dead_letters_state_died", "state", "died_at"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 hex; the token is never stored
    Column("scope", String(16), nullable=False),  # read | write
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(50), nullable=False),
    Column("target", Text),
    Column("details", JSON),
)

source_flags = Table(
    "source_flags",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("needs_reauth", Boolean, nullable=False),
    Column("reason", Text),
    Column("flagged_at", UTCDateTime, nullable=False),
)


class ConnectionStatus(StrEnum):
    """Where a source's OAuth connection stands (`connections.status`)."""

    CONNECTED = "connected"
    NEEDS_REAUTH = "needs_reauth"  # the vendor refused the refresh token: connect the source again
    REVOKED = "revoked"  # an operator revoked it; the tokens are gone


# One OAuth connection per source. Tokens are Fernet-sealed (events.secretbox), never in the clear.
# `generation` counts every new pair; `lease_*` is the refresh lock where no row lock exists (SQLite).
connections = Table(
    "connections",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("provider", String(50)),
    Column("status", String(16), nullable=False),  # ConnectionStatus
    Column("access_token", Text),  # sealed
    Column("refresh_token", Text),  # sealed
    Column("token_type", String(40)),
    Column("scope", Text),
    Column("expires_at", UTCDateTime),  # None: the vendor gave no expiry
    Column("refresh_expires_at", UTCDateTime),
    Column("generation", Integer, nullable=False),
    Column("connected_at", UTCDateTime, nullable=False),
    Column("connected_by", String(100), nullable=False),
    Column("refreshed_at", UTCDateTime),
    Column("reason", Text),  # why it needs re-authorization
    Column("lease_token", String(36)),
    Column("lease_until", UTCDateTime),
)

# An install in flight: the signed `state` names the row by its nonce; single use, short-lived.
oauth_states = Table(
    "oauth_states",
    metadata,
    Column("nonce_hash", String(64), primary_key=True),  # sha256 hex of the nonce inside the state
    Column("source", String(100), nullable=False),
    Column("verifier", Text),  # the PKCE code verifier, sealed; None when PKCE is off
    Column("redirect_uri", Text, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime),
)

# Syncs (workers/syncing.py): one cursor per (source, stream), leased by the run that moves it; a
# history row per run, unique per schedule slot; the items a schema refused, with their field errors.
sync_cursors = Table(
    "sync_cursors",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("stream", String(100), primary_key=True),
    Column("cursor", JSON),  # the stream's resume point; None: from the beginning
    Column("checkpoint_at", UTCDateTime),  # when the cursor last moved
    Column("fresh_at", UTCDateTime),  # the start of the last run that reached the present
    Column("lease_token", String(36)),  # the fencing token of the run that may move the cursor
    Column("lease_until", UTCDateTime),
    Column("run_id", String(36)),  # the run that holds, or last held, the lease
    Column("resume_at", UTCDateTime),  # a run ended early (throttled, out of time): go on then
    Column("queued_at", UTCDateTime),  # the sweeper sent a run for `resume_at` and waits for it
    Column("failures", Integer, nullable=False, default=0, server_default="0"),  # in a row
    Column("last_error", Text),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("source", String(100), nullable=False),
    Column("stream", String(100), nullable=False),
    Column("slot", String(100), nullable=False),  # one run per schedule slot, manual trigger or resume
    Column("triggered_by", String(16), nullable=False),  # beat | manual | resume
    Column("full_sync", Boolean, nullable=False, default=False),
    Column("status", String(16), nullable=False),  # workers.syncing.RunStatus
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("pages", Integer, nullable=False, default=0),
    Column("records", Integer, nullable=False, default=0),  # read and valid
    Column("applied", Integer, nullable=False, default=0),  # written: new or newer than stored
    Column("stale", Integer, nullable=False, default=0),  # older than stored: counted, never written
    Column("quarantined", Integer, nullable=False, default=0),
    Column("changed", Integer, nullable=False, default=0),  # news to the sync (coverage's denominator)
    Column("covered", Integer, nullable=False, default=0),  # … that a webhook had already delivered
    Column("error", Text),
    Column("cursor_before", JSON),
    Column("cursor_after", JSON),
    UniqueConstraint("source", "stream", "slot", name="uq_sync_runs_slot"),
    Index("ix_sync_runs_stream_started", "source", "stream", "started_at"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("stream", String(100), nullable=False),
    Column("vendor", String(50), nullable=False),
    Column("item_key", String(200), nullable=False),  # the item's id, or a hash of it
    Column("run_id", String(36), nullable=False),  # the last run that met it
    Column("errors", JSON, nullable=False),  # [{"loc", "msg"}]
    Column("item", JSON),  # the vendor's item as it came
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("seen", Integer, nullable=False, default=1),
    UniqueConstraint("source", "stream", "item_key", name="uq_quarantine_item"),
    Index("ix_quarantine_last_seen", "last_seen_at"),
)

# Event-driven fetches (workers.fetching): one row per object an event named, keyed like the object.
# `pending` until `due_at` (the coalescing window, a backoff, or the breaker's next probe), `running`
# under a lease, then `done` (or `failed`); `fetched_version` is the idempotency key's version: an
# event announcing it (or older) asks for nothing. `requests` counts the asks since the last fetch.
object_fetches = Table(
    "object_fetches",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("stream", String(100), primary_key=True),
    Column("object_id", String(200), primary_key=True),
    Column("vendor", String(50), nullable=False),
    Column("state", String(16), nullable=False),  # events.fetches.FetchState
    Column("due_at", UTCDateTime, nullable=False),
    Column("requests", Integer, nullable=False, default=0),
    Column("first_asked_at", UTCDateTime, nullable=False),  # the first ask of this window
    Column("wanted_version", UTCDateTime),  # the newest `updated_at` an event announced
    Column("fetched_version", UTCDateTime),  # the `updated_at` the last fetch read
    Column("fetched_at", UTCDateTime),
    Column("lease_token", String(36)),
    Column("lease_until", UTCDateTime),
    Column("queued_at", UTCDateTime),  # a message was sent for `due_at`; the sweeper waits for it
    Column("attempts", Integer, nullable=False, default=0),  # failures in a row (waits do not count)
    Column("waits", Integer, nullable=False, default=0),  # breaker open or throttled since the last fetch
    Column("last_error", Text),
    Index("ix_object_fetches_due", "state", "due_at"),
)

# Operations (migration 0006): the monitor's state per source, counters per source and hour, secrets
# the application makes for itself (the dashboard's session key).
monitor_state = Table(
    "monitor_state",
    metadata,
    Column("source", String(100), primary_key=True),
    Column(
        "slot", BigInteger, nullable=False
    ),  # last evaluation: unix time // interval (a repeat is a no-op)
    Column("evaluated_at", UTCDateTime, nullable=False),
    Column("last_event_at", UTCDateTime),
    Column("learned_until", UTCDateTime),  # the anomaly baseline has learned every hour before this
    Column("state", JSON, nullable=False),  # alert states, baseline, last health (events.monitoring)
)

source_counts = Table(
    "source_counts",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("name", String(50), primary_key=True),  # events.counts names: vendor_calls, refused
    Column("hour", UTCDateTime, primary_key=True),  # the UTC hour the count belongs to
    Column("count", Integer, nullable=False),
)

app_secrets = Table(
    "app_secrets",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("value", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)


# One row per action a rule took for an event; the idempotency key (event:rule:action index) is
# unique, so however often an event is redelivered, retried or replayed, an action is recorded once.
action_runs = Table(
    "action_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("event_id", String(36), nullable=False, index=True),
    Column("source", String(100), nullable=False),
    Column("vendor", String(50), nullable=False),
    Column("rule", String(100), nullable=False),
    Column("action_index", Integer, nullable=False),
    Column("action_type", String(100), nullable=False),
    Column("params", JSON),  # rendered, secrets left out (they come from the rule); None: rendering failed
    Column("gate_key", String(200)),  # the rendered throttle / debounce key
    Column("state", String(16), nullable=False),  # ActionState
    Column("attempts", Integer, nullable=False, default=0),
    Column("attempts_before_replay", Integer, nullable=False, default=0),
    Column("throttled_tries", Integer, nullable=False, default=0),  # 429s: they use up no attempt
    Column("created_at", UTCDateTime, nullable=False),
    Column("available_at", UTCDateTime, nullable=False),
    Column("relay_at", UTCDateTime, nullable=False),
    Column("relayed", Integer, nullable=False, default=0),
    Column("lease_token", String(36)),
    Column("finished_at", UTCDateTime),  # done or dead
    Column("error_class", String(200)),
    Column("last_error", Text),
    Column("traceback", Text),
    Column("result", JSON),  # what the target answered (Slack's ts, the HTTP status, the tags)
    Column("history", JSON, nullable=False),  # every try: number, time, duration, outcome, error
    Column("replays", Integer, nullable=False, default=0),
    Column("replayed_at", UTCDateTime),
    Index("ix_action_runs_relay", "state", "relay_at"),
    Index("ix_action_runs_rule_state", "rule", "state"),
    Index("ix_action_runs_gate", "rule", "gate_key", "state"),
)

# Throttle and debounce state per (rule, rendered key), shared by every worker: the row is locked
# while a match is decided, in the transaction that records it.
rule_gates = Table(
    "rule_gates",
    metadata,
    Column("rule", String(100), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("fired", JSON, nullable=False),  # unix times of the firings inside the throttle window
    Column("updated_at", UTCDateTime, nullable=False),
)

# Runtime switches: a rule or a whole source turned on or off without a deploy.
runtime_flags = Table(
    "runtime_flags",
    metadata,
    Column("kind", String(16), primary_key=True),  # rule | source
    Column("name", String(100), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(100), nullable=False),
)

# Tags the `event.tag` action put on a stored event.
event_tags = Table(
    "event_tags",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("tag", String(200), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# Beat leadership (events/leader.py): one row per lease. The fencing token grows every time the
# lease changes hands; the holder writes the schedule's last runs with each send, so whoever leads
# next goes on from them.
leases = Table(
    "leases",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("holder", String(200), nullable=False),  # host:pid:random of the process that holds it
    Column("token", BigInteger, nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("last_runs", JSON, nullable=False),  # schedule entry → unix time of its last send
)


def text_limit(table: Table, column: str) -> int:
    """The declared length of a String column: values are checked against it before they are written."""
    kind = table.c[column].type
    if not isinstance(kind, String) or kind.length is None:
        raise TypeError(f"{table.name}.{column} is not a String column with a length")
    return kind.length


def row_dict(row: Any, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A result row as JSON-ready data (plain str keys, ISO-8601 times)."""
    return {
        str(k): (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in row._mapping.items()
        if k not in exclude
    }


def event_dict(row: Any) -> dict[str, Any]:
    """An events row for operators: the raw body as text, never the lease token."""
    return {**row_dict(row, exclude=("body", "lease_token")), "body": row.body.decode("utf-8", "replace")}


def utcnow() -> datetime:
    return datetime.now(UTC)


def sync_url(url: str) -> str:
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def async_url(url: str) -> str:
    """The ingress's driver: asyncpg on PostgreSQL (binary protocol, its INSERT prepared once per
    connection), aiosqlite on SQLite."""
    u = make_url(sync_url(url))
    if u.drivername == "sqlite":
        u = u.set(drivername="sqlite+aiosqlite")
    elif u.drivername == "postgresql+psycopg":
        u = u.set(drivername="postgresql+asyncpg")
    return u.render_as_string(hide_password=False)


JSON_CODEC: dict[str, Any] = {
    "json_serializer": lambda value: orjson.dumps(value).decode(),
    "json_deserializer": orjson.loads,
}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _ensure_sqlite_dir(url: str) -> None:
    u = make_url(url)
    if u.drivername.startswith("sqlite") and u.database and u.database != ":memory:":
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str, connect_timeout_s: float | None = None) -> Engine:
    url = sync_url(url)
    _ensure_sqlite_dir(url)
    kwargs: dict[str, Any] = dict(JSON_CODEC)
    if connect_timeout_s is not None and not url.startswith("sqlite"):
        kwargs["connect_args"] = {"connect_timeout": max(int(connect_timeout_s), 1)}
    engine = create_engine(url, pool_pre_ping=True, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def make_async_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    url = async_url(url)
    _ensure_sqlite_dir(url)
    # No pre-ping on the hot path: a dead connection fails its transaction (→ 503, the vendor
    # retries) and the pool discards it.
    kwargs: dict[str, Any] = dict(JSON_CODEC)
    if not url.startswith("sqlite"):
        kwargs.update(pool_size=pool_size, max_overflow=0, pool_timeout=5)
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def dialect_insert(dialect_name: str) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    return postgresql.insert if dialect_name == "postgresql" else sqlite.insert
