"""`hookyard dlq …` and `hookyard tokens …`: the operator's tools for failed work and API access."""

from __future__ import annotations

import getpass
import sys
from collections import Counter
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from events import audit, dlq, flags, runs, syncs
from events.db import LetterState, utcnow
from events.queue import publish, publish_actions
from events.settings import get_settings
from events.sources import load_sources
from ops import tokens
from ops.cli_support import JsonOpt, print_json
from ops.database import open_database
from ops.tables import print_table, print_with_notes, when
from schemas.errors import HookyardError

dlq_cli = typer.Typer(help="Dead letters: list, show, edit, replay, purge.", no_args_is_help=True)
tokens_cli = typer.Typer(help="Operator API tokens.", no_args_is_help=True)
sources_cli = typer.Typer(help="Configured sources and their health flags.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
ERROR_CHARS = 500  # of an error message in `dlq list`; `dlq show` has it all, traceback included

Source = Annotated[str | None, typer.Option(help="Only this source.")]
Vendor = Annotated[str | None, typer.Option(help="Only this vendor (connector).")]
Task = Annotated[str | None, typer.Option(help="Only this task name.")]
ErrorClass = Annotated[str | None, typer.Option("--error-class", help="Only this error class.")]
Since = Annotated[datetime | None, typer.Option(help="Died at or after (ISO-8601, UTC).")]
Until = Annotated[datetime | None, typer.Option(help="Died before (ISO-8601, UTC).")]
Text = Annotated[str | None, typer.Option("--text", help="Free text in error, type or traceback.")]
EventId = Annotated[
    str,
    typer.Argument(
        help="The dead event's id, or the run id with --kind actions (dlq list shows it).", metavar="EVENT_ID"
    ),
]


class LetterChoice(StrEnum):
    """`dlq list --state`: a dead letter's state, or all of them."""

    DEAD = LetterState.DEAD.value
    REPLAYED = LetterState.REPLAYED.value
    ALL = "all"


Kind = Annotated[str, typer.Option(help="events | actions (a rule's action runs; --task is the action type)")]
KINDS = ("events", "actions")


def _kind(value: str) -> bool:
    """True for actions; BadParameter for anything but events or actions."""
    if value not in KINDS:
        raise typer.BadParameter(f"{value!r}: --kind is events or actions (quarantine: dlq list only)")
    return value == "actions"


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else (value if value.tzinfo else value.replace(tzinfo=UTC))


def _filters(
    source: str | None,
    vendor: str | None,
    task: str | None,
    error_class: str | None,
    since: datetime | None,
    until: datetime | None,
    text: str | None,
    state: str | None = "dead",
) -> dlq.Filters:
    return dlq.Filters(
        source=source,
        vendor=vendor,
        task=task,
        error_class=error_class,
        since=_utc(since),
        until=_utc(until),
        text=text,
        state=state,
    )


def _engine() -> Any:
    return open_database(get_settings())


@dlq_cli.command("list")
def dlq_list(
    source: Source = None,
    vendor: Vendor = None,
    task: Task = None,
    error_class: ErrorClass = None,
    since: Since = None,
    until: Until = None,
    text: Text = None,
    state: Annotated[
        LetterChoice, typer.Option(help="Dead letters in this state, or all.")
    ] = LetterChoice.DEAD,
    limit: Annotated[int, typer.Option(help="At most N.")] = 50,
    kind: Annotated[
        str,
        typer.Option(
            help="events | actions (a rule's action runs) | quarantine (synced items their schema refused)"
        ),
    ] = "events",
    as_json: JsonOpt = False,
) -> None:
    """Dead letters, newest first: dead events, dead rule actions, or quarantined sync items."""
    if kind == "quarantine":
        _quarantine_list(source, limit, as_json)
        return
    actions = _kind(kind)
    filters = _filters(
        source,
        vendor,
        task,
        error_class,
        since,
        until,
        text,
        None if state is LetterChoice.ALL else state.value,
    )
    with _engine().connect() as conn:
        rows = runs.find(conn, filters, limit) if actions else dlq.find(conn, filters, limit)
    if as_json:
        print_json(rows)
        return
    if actions:
        _print_dead_actions(rows)
        return
    print_with_notes(
        console,
        ("event id", "source", "type", "tries", "died at", "state"),
        [
            (r["event_id"], r["source"], r["type"], str(r["attempts"]), when(r["died_at"]), r["state"])
            for r in rows
        ],
        [f"{r['event_id']}  {r['error_class']}: {r['error_message']}" for r in rows],
        keep=("event id",),
        note_chars=ERROR_CHARS,
    )


def _quarantine_list(source: str | None, limit: int, as_json: bool) -> None:
    with _engine().connect() as conn:
        rows = syncs.quarantined(conn, source=source, limit=limit)
    if as_json:
        print_json(rows)
        return
    print_with_notes(
        console,
        ("source/stream", "item", "seen", "last seen"),
        [
            (f"{r['source']}/{r['stream']}", r["item_key"], str(r["seen"]), when(r["last_seen_at"]))
            for r in rows
        ],
        [
            f"{r['source']}/{r['stream']} {r['item_key']}  "
            + "; ".join(f"{e['loc'] or '(item)'}: {e['msg']}" for e in r["errors"])
            for r in rows
        ],
        keep=("source/stream", "item"),
        note_chars=ERROR_CHARS,
    )


def _print_dead_actions(rows: list[dict[str, Any]]) -> None:
    print_with_notes(
        console,
        ("run id", "rule", "action", "tries", "died at", "state"),
        [
            (r["id"], r["rule"], r["action_type"], str(r["attempts"]), when(r["died_at"]), r["state"])
            for r in rows
        ],
        [f"{r['id']}  {r['error_class']}: {r['error_message'] or ''}" for r in rows],
        keep=("run id",),
        note_chars=ERROR_CHARS,
    )


@dlq_cli.command("show")
def dlq_show(event_id: EventId, kind: Kind = "events", as_json: JsonOpt = False) -> None:
    """One dead letter: the error, its traceback, every attempt and the raw request."""
    actions = _kind(kind)
    with _engine().connect() as conn:
        data = runs.show(conn, event_id) if actions else dlq.show(conn, event_id)
    if data is None:
        err.print(f"[red]no {'action run' if actions else 'dead letter'} {event_id}[/]")
        raise typer.Exit(1)
    if as_json:
        print_json(data)
    else:
        console.print_json(orjson.dumps(data).decode())


@dlq_cli.command("edit")
def dlq_edit(
    event_id: EventId,
    sets: Annotated[
        list[str],
        typer.Option(
            "--set", metavar="PATH=VALUE", help="PATH uses dots; VALUE is JSON when it parses. Repeatable."
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Edit a dead event's payload; it must validate before it is saved. The original is kept."""
    pairs = []
    for item in sets:
        path, sep, raw = item.partition("=")
        if not sep or not path:
            raise typer.BadParameter(f"{item!r}: expected PATH=VALUE")
        pairs.append((path, dlq.parse_value(raw)))
    engine = _engine()
    try:
        with engine.begin() as conn:
            payload = dlq.edit(conn, event_id, pairs, utcnow())
            audit.record(conn, _actor(), "dlq.edit", event_id, {"set": dict(pairs)})
    except dlq.EditRejected as exc:
        err.print(f"[red]not saved:[/] {exc}")
        raise typer.Exit(1) from None
    if as_json:
        print_json(payload)
    else:
        console.print(f"[green]saved[/]; it validates. Replay it with: hookyard dlq replay {event_id}")


def confirm(question: str, *, yes: bool, as_json: bool) -> None:
    """A bulk action goes ahead on --yes or a person's answer; when nobody can answer (--json, or
    input that is not a terminal) it stops with exit code 2 instead of guessing."""
    if yes:
        return
    if as_json or not sys.stdin.isatty():
        err.print(
            "[red]refused:[/] a bulk action needs --yes when nobody can answer a prompt "
            "(--json, or input that is not a terminal)"
        )
        raise typer.Exit(2)
    if not typer.confirm(question):
        raise typer.Exit(1)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


@dlq_cli.command("replay")
def dlq_replay(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Event ids (or --where with filters).", metavar="EVENT_ID")
    ] = None,
    where: Annotated[bool, typer.Option("--where", help="Select by the filters below.")] = False,
    source: Source = None,
    vendor: Vendor = None,
    task: Task = None,
    error_class: ErrorClass = None,
    since: Since = None,
    until: Until = None,
    text: Text = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan only.")] = False,
    rate: Annotated[float | None, typer.Option(help="At most N replays per second.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    kind: Kind = "events",
    as_json: JsonOpt = False,
) -> None:
    """Replay dead letters: by id, or every one matching --where filters. Safe to interrupt and rerun."""
    actions = _kind(kind)
    if not ids and not where:
        raise typer.BadParameter("name event ids, or --where with filters")
    filters = _filters(source, vendor, task, error_class, since, until, text) if where else None
    engine = _engine()
    with engine.connect() as conn:
        targets = (
            runs.plan(conn, filters, tuple(ids or ())) if actions else dlq.plan(conn, filters, ids or ())
        )
    summary = {
        "planned": len(targets),
        "by_vendor": dict(Counter(v for _, v in targets)),
        "first": [e for e, _ in targets[:10]],
    }
    if dry_run or not targets:
        print_json(summary) if as_json else console.print(
            f"{len(targets)} dead letter(s) would be replayed: {summary['by_vendor']}"
        )
        return
    if not as_json:
        console.print(
            f"plan: replay {len(targets)} dead letter(s) {summary['by_vendor']}"
            + (f" at {rate}/s" if rate else "")
        )
    if len(targets) > 1:
        confirm("go ahead?", yes=yes, as_json=as_json)
    done = [0]

    def progress(handled: int, total: int) -> None:
        done[0] = handled
        if not as_json:
            console.print(f"  {handled}/{total}")

    try:
        replayed, skipped = dlq.replay(
            engine,
            targets,
            publish=(lambda moved: publish_actions(i for i, _ in moved)) if actions else publish,
            actor=_actor(),
            rate_per_s=rate,
            progress=progress,
            move=runs.replay_one if actions else dlq.replay_one,
            audit_key="run_ids" if actions else "event_ids",
        )
    except KeyboardInterrupt:
        err.print(f"\ninterrupted after {done[0]} of {len(targets)}; run the same command to resume")
        raise typer.Exit(130) from None
    result = {"replayed": replayed, "skipped": skipped}
    print_json(result) if as_json else console.print(
        f"replayed {replayed}; {skipped} were no longer dead (already replayed or done)"
    )


@dlq_cli.command("purge")
def dlq_purge(
    where: Annotated[bool, typer.Option("--where", help="Select by the filters below.")] = False,
    source: Source = None,
    vendor: Vendor = None,
    task: Task = None,
    error_class: ErrorClass = None,
    since: Since = None,
    until: Until = None,
    text: Text = None,
    older_than: Annotated[
        str | None, typer.Option(help="Only those dead longer than this (e.g. 30d).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete dead letters for good (their events stay, marked purged, for deduplication).

    A selector is required: --where (with the filters; alone it selects every dead letter) and/or
    --older-than. It asks before it deletes; --yes when nobody can answer (--json, scripts)."""
    if not where and older_than is None:
        raise typer.BadParameter("say what to purge: --where with filters and/or --older-than")
    filters = _filters(source, vendor, task, error_class, since, until, text, state=None)
    try:
        age = dlq.parse_duration(older_than) if older_than else None
    except HookyardError as exc:
        raise typer.BadParameter(str(exc)) from None
    engine = _engine()
    with engine.connect() as conn:
        n = dlq.purge_count(conn, filters, age, now=utcnow())
    confirm(f"purge {n} dead letter(s)?", yes=yes, as_json=as_json)
    with engine.begin() as conn:
        purged = dlq.purge(conn, filters, age, now=utcnow())
        audit.record(conn, _actor(), "dlq.purge", None, {"purged": purged, "older_than": older_than})
    print_json({"purged": purged}) if as_json else console.print(f"purged {purged} dead letter(s)")


@tokens_cli.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="Who or what uses it.")],
    scope: Annotated[str, typer.Option(help="read | write")] = "read",
    as_json: JsonOpt = False,
) -> None:
    """Create an API token. It is shown once; only its hash is stored."""
    if scope not in tokens.SCOPES:
        raise typer.BadParameter(f"scope must be one of {', '.join(tokens.SCOPES)}")
    with _engine().begin() as conn:
        token = tokens.create(conn, name, scope)
        audit.record(conn, _actor(), "tokens.create", name, {"scope": scope})
    print_json({"token": token, "name": name, "scope": scope}) if as_json else console.print(token)


@tokens_cli.command("list")
def tokens_list(as_json: JsonOpt = False) -> None:
    """Tokens (never their values)."""
    with _engine().connect() as conn:
        rows = tokens.listing(conn)
    if as_json:
        print_json(rows)
        return
    print_table(
        console,
        ("id", "name", "scope", "created", "revoked"),
        [(r["id"], r["name"], r["scope"], when(r["created_at"]), when(r["revoked_at"])) for r in rows],
        keep=("id",),
    )


@tokens_cli.command("revoke")
def tokens_revoke(
    token_id: Annotated[
        str, typer.Argument(help="The token's id (tokens list shows it).", metavar="TOKEN_ID")
    ],
) -> None:
    """Revoke a token by id."""
    with _engine().begin() as conn:
        if not tokens.revoke(conn, token_id):
            err.print(f"[red]no active token {token_id}[/]")
            raise typer.Exit(1)
        audit.record(conn, _actor(), "tokens.revoke", token_id)
    console.print("revoked")


@sources_cli.command("list")
def sources_list(as_json: JsonOpt = False) -> None:
    """Configured sources; a flagged one needs its vendor credentials re-authorized."""
    settings = get_settings()
    with _engine().connect() as conn:
        rows = flags.statuses(conn, load_sources(settings.config, settings.secrets_file))
    if as_json:
        print_json(rows)
        return
    print_table(
        console,
        ("source", "connector", "needs re-authorization", "reason"),
        [(r["name"], r["connector"], "YES" if r["needs_reauth"] else "", r["reason"] or "") for r in rows],
        keep=("source",),
    )


@sources_cli.command("clear-flag")
def sources_clear_flag(
    name: Annotated[str, typer.Argument(help="The source's name in the sources file.", metavar="SOURCE")],
) -> None:
    """Clear a source's re-authorization flag once its credentials are fixed."""
    with _engine().begin() as conn:
        if not flags.clear(conn, name):
            err.print(f"[red]source {name} is not flagged[/]")
            raise typer.Exit(1)
        audit.record(conn, _actor(), "sources.clear_flag", name)
    console.print(f"{name}: flag cleared")
