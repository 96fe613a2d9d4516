"""`hookyard sync …`: run a stream now, see every stream's state, rewind a cursor.

`workers` is imported inside the commands: it brings the metrics, which `hookyard web` and `worker`
must not load before they choose their metrics directory.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from events import syncs
from events.db import utcnow
from events.log import configure_logging
from events.queue import publish_sync
from events.settings import get_settings
from events.sources import load_sources
from ops.cli_dlq import _actor, _engine
from ops.cli_support import JsonOpt, print_json
from ops.tables import print_table, when

if TYPE_CHECKING:
    from workers.sync_store import Counts

sync_cli = typer.Typer(help="Scheduled syncs from vendor APIs: run, status, rewind.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

SourceArg = Annotated[str, typer.Argument(help="A configured source with an API.")]
StreamArg = Annotated[str, typer.Argument(help="One of its connector's streams (orders, tickets, …).")]
NOT_RUN = ("busy", "duplicate", "flagged")  # workers.syncing.RunStatus values of a run that did not run
WHY_NOT = {
    "busy": "another run holds this stream; try again when it ends",
    "flagged": "the source needs re-authorization (hookyard sources list)",
}


@sync_cli.command("run")
def sync_run(
    source: SourceArg,
    stream: StreamArg,
    full: Annotated[bool, typer.Option("--full", help="From the beginning, not from the cursor.")] = False,
    queue: Annotated[bool, typer.Option("--queue", help="Send it to the workers instead.")] = False,
    slot: Annotated[
        str | None, typer.Option(help="Name the run: a slot runs at most once (idempotent triggers).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run one stream now, in the foreground with a progress bar (or --queue it for the workers)."""
    from workers import syncing
    from workers.syncs import make_deps

    settings = get_settings()
    configure_logging(settings.log_format, "WARNING")  # on stderr; a line per call would bury the bar
    deps = make_deps(settings)
    syncing.target(deps.sources, source, stream)  # an unknown source or stream stops here (exit 2)
    slot = slot or f"manual-{uuid.uuid4()}"
    if queue:
        publish_sync(source, stream, slot=slot, triggered_by="manual", full=full)
        print_json({"queued": True, "slot": slot}) if as_json else console.print(f"queued ({slot})")
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=err,
        disable=as_json,
        transient=True,
    ) as bar:
        task = bar.add_task(f"{source}/{stream}", counts="starting", total=None)

        def progress(counts: Counts, pages: int) -> None:
            bar.update(task, counts=f"{pages} pages · {counts.records} read · {counts.applied} written")

        result = syncing.run(
            _engine(), deps, source, stream, slot=slot, triggered_by="manual", full=full, progress=progress
        )
    data = {
        "run_id": result.run_id,
        "status": str(result.status),
        **result.counts.values(),
        "coverage": syncs.coverage(result.counts.covered, result.counts.changed),
        "cursor": result.cursor,
        "resume_at": result.resume_at.isoformat() if result.resume_at else None,
        "error": result.error,
    }
    if as_json:
        print_json(data)
    elif result.status in NOT_RUN:
        err.print(
            f"[yellow]not run ({result.status}):[/] {WHY_NOT.get(result.status, 'this slot already ran')}"
        )
    else:
        c = result.counts
        console.print(
            f"{result.status}: {c.records} read, {c.applied} written, {c.stale} stale, "
            f"{c.quarantined} quarantined; coverage {_percent(data['coverage'])}"
        )
        console.print(f"run {result.run_id}", highlight=False)
        if result.error:
            console.print(f"error: {result.error}", highlight=False)
    if result.status in (*NOT_RUN, "failed"):
        raise typer.Exit(1)


def _percent(value: Any) -> str:
    return "—" if value is None else f"{value:.0%}"


def _lag(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@sync_cli.command("status")
def sync_status(as_json: JsonOpt = False) -> None:
    """Every stream: cursor, lag, last run, coverage and last error."""
    settings = get_settings()
    sources = load_sources(settings.config, settings.secrets_file)
    with _engine().connect() as conn:
        rows = syncs.status(conn, sources, utcnow())
    if as_json:
        print_json(rows)
        return
    table = []
    for r in rows:
        last = r["last_run"] or {}
        table.append(
            (
                f"{r['source']}/{r['stream']}",
                syncs.state_of(r),
                when(last.get("started_at")),
                _lag(r["lag_s"]),
                _percent(last.get("coverage")),
                _percent(r["coverage_24h"]),
                orjson.dumps(r["cursor"]).decode() if r["cursor"] is not None else "—",
                r["last_error"] or "",
            )
        )
    print_table(
        console,
        ("stream", "state", "last run", "lag", "coverage", "24h", "cursor", "last error"),
        table,
        keep=("stream",),
    )


@sync_cli.command("rewind")
def sync_rewind(
    source: SourceArg,
    stream: StreamArg,
    to: Annotated[
        datetime, typer.Option("--to", help="Read again everything changed since (ISO-8601, UTC).")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Move a stream's cursor back to a time; the next run reads everything changed since. Audited."""
    moment = to if to.tzinfo else to.replace(tzinfo=UTC)
    settings = get_settings()
    sources = load_sources(settings.config, settings.secrets_file)
    try:
        with _engine().begin() as conn:
            change = syncs.rewind(conn, sources, source, stream, moment, actor=_actor(), now=utcnow())
    except syncs.RewindRefused as exc:
        err.print(f"[red]refused:[/] {exc}")
        raise typer.Exit(1) from None
    if as_json:
        print_json(change)
    else:
        console.print(
            f"{source}/{stream} rewound to {moment.isoformat()}; cursor now {change['cursor_after']}"
        )
