"""`hookyard status`: the whole system at a glance, in tables that never cut an id or a name."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from events.db import utcnow
from events.settings import get_settings
from events.sources import load_sources
from ops.cli_support import print_json
from ops.database import open_database
from ops.tables import print_table, when

console = Console()
LEVELS = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "bad": "[red]BAD[/]", "unknown": "?"}


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return (
        f"{value:.0f}s" if value < 120 else f"{value / 60:.0f}m" if value < 7200 else f"{value / 3600:.0f}h"
    )


def _states(states: dict[str, str]) -> str:
    return " ".join(f"{name}:{state}" for name, state in sorted(states.items())) or "-"


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Sources (health, SLA, flags), inbox and queues, dead letters and API quotas."""
    from ops import status as snapshot  # it imports the metrics: not before `web` chose their directory

    settings = get_settings()
    sources = load_sources(settings.config, settings.secrets_file)
    engine = open_database(settings, project=False)  # one line, exit 2, when it cannot be used
    try:
        data = snapshot.snapshot(engine, sources, utcnow())
    finally:
        engine.dispose()
    if as_json:
        print_json(data)
        return
    _print(data)


def _print(data: dict[str, Any]) -> None:
    console.print("[bold]Sources[/]")
    print_table(
        console,
        ("source", "connector", "health", "level", "SLA", "flags", "last event"),
        [
            (
                s["name"],
                s["connector"],
                "?" if s["score"] is None else str(s["score"]),
                LEVELS[s["level"]],
                _states(s["sla"]),
                "needs re-auth" if s["needs_reauth"] else ", ".join(s["breaches"]),
                when(s["last_event_at"]),
            )
            for s in data["sources"]
        ],
        keep=("source",),
    )
    console.print("[bold]Inbox[/] (events)")
    print_table(
        console,
        ("source", "accepted", "processing", "retry", "delayed", "dead", "oldest"),
        [
            (
                r["source"],
                *(str(r[k]) for k in ("accepted", "processing", "retry", "delayed", "dead")),
                _seconds(r["oldest_unfinished_s"]),
            )
            for r in data["inbox"]
        ],
        keep=("source",),
    )
    oldest = data["oldest_unfinished"]
    if oldest:
        console.print(
            f"oldest unfinished: {oldest['id']} ({oldest['source']}, {oldest['state']}, "
            f"{_seconds(oldest['age_s'])} old)",
            highlight=False,
        )
    queues = data["queues"]
    console.print(
        "[bold]Queues[/] (broker messages)" + ("" if queues["reachable"] else " [red]unreachable[/]")
    )
    print_table(
        console,
        ("queue", "messages"),
        [(name, "?" if n is None else str(n)) for name, n in queues["messages"].items()],
        keep=("queue",),
    )
    console.print("[bold]Dead letters[/]")
    print_table(
        console,
        ("source", "dead", "latest"),
        [(r["source"], str(r["dead"]), when(r["latest"])) for r in data["dead_letters"]],
        keep=("source",),
    )
    beat = data["beat"]
    if beat is None:
        console.print("[bold]Beat[/]: [red]no beat has run[/]")
    else:
        lead = f"led by {beat['holder']}" if beat["live"] else "[red]no leader[/] (lease lapsed)"
        console.print(
            f"[bold]Beat[/]: {lead}, token {beat['token']}, since {when(beat['since'])}, "
            f"lease until {when(beat['until'])}",
            highlight=False,
        )
    if data["quotas"]:
        console.print("[bold]API quotas[/] (UTC day)")
        print_table(
            console,
            ("source", "used", "quota", "per hour", "status", "runs out"),
            [
                (
                    q["source"],
                    str(q["used"]),
                    "-" if q["quota"] is None else str(q["quota"]),
                    f"{q['rate_per_h']:g}",
                    q.get("status", ""),
                    when(q.get("runs_out_at")),
                )
                for q in data["quotas"]
            ],
            keep=("source",),
        )
