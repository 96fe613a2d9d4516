"""`hookyard connections …`: connect sources to their vendors through OAuth, list, revoke, rekey."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from connectors.http import process_client
from events import connections, install
from events.connections import NotConnected, box_for
from events.db import utcnow
from events.install import InstallRefused
from events.log import configure_logging
from events.secretbox import TOKEN_KEYS_VAR, new_key
from events.settings import get_settings
from events.sources import Source, load_sources
from ops.cli_dlq import _actor, _engine
from ops.cli_support import JsonOpt, print_json
from ops.tables import print_table, when

connections_cli = typer.Typer(
    help="OAuth connections of sources: connect, list, revoke, rekey.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)

SourceArg = Annotated[
    str, typer.Argument(metavar="SOURCE", help="A configured source with an [oauth] block.")
]


@connections_cli.callback()
def _logging() -> None:
    """Log lines go to stderr, so that stdout stays the answer (`--json` for scripts)."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)


def _sources() -> dict[str, Source]:
    settings = get_settings()
    return load_sources(settings.config, settings.secrets_file)


def _configured(name: str) -> Source:
    source = _sources().get(name)
    if source is None or source.oauth is None:
        what = "no source named" if source is None else "no [oauth] table in source"
        err.print(f"[red]{what} {name!r}[/]")
        raise typer.Exit(1)
    return source


@connections_cli.command("list")
def connections_list(as_json: JsonOpt = False) -> None:
    """Sources with an [oauth] table and their connection (never a token)."""
    sources = _sources()
    with _engine().connect() as conn:
        rows = connections.listing(conn, sources)
    if as_json:
        print_json(rows)
        return
    print_table(
        console,
        ("source", "provider", "status", "scope", "expires", "refreshed", "connected by", "reason"),
        [
            (
                r["source"],
                r["provider"] or "",
                r["status"],
                r["scope"] or "",
                when(r["expires_at"]),
                when(r["refreshed_at"]),
                r["connected_by"] or "",
                r["reason"] or "",
            )
            for r in rows
        ],
        keep=("source", "status"),
    )


@connections_cli.command("connect")
def connections_connect(source: SourceArg, as_json: JsonOpt = False) -> None:
    """Start connecting SOURCE: prints the URL to open in a browser (single use, short-lived)."""
    found = _configured(source)
    settings = get_settings()
    try:
        started = install.start(_engine(), found, box_for(settings), settings.oauth, _actor(), utcnow())
    except InstallRefused as exc:
        err.print(f"[red]{exc.detail}[/]")
        raise typer.Exit(1) from None
    if as_json:
        print_json({"source": source, "url": started.url, "expires_at": started.expires_at.isoformat()})
        return
    until = when(started.expires_at.isoformat())
    console.print(f"Open this URL in a browser to connect [bold]{source}[/] (valid until {until} UTC):")
    print(started.url)  # plain, unwrapped: a terminal must not break it


@connections_cli.command("revoke")
def connections_revoke(source: SourceArg, as_json: JsonOpt = False) -> None:
    """Revoke SOURCE's tokens at the vendor (where it allows) and delete ours."""
    found = _configured(source)
    try:
        result = connections.revoke(
            _engine(), found, box_for(get_settings()), _actor(), utcnow(), http=process_client()
        )
    except NotConnected as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    if as_json:
        print_json(result)
        return
    said = {"revoked": "revoked at the vendor", "not_supported": "the vendor has no revocation endpoint"}
    vendor = said.get(result["vendor"], f"vendor revocation failed: {result['detail']}")
    console.print(f"{source}: revoked ({vendor})")


@connections_cli.command("rekey")
def connections_rekey(as_json: JsonOpt = False) -> None:
    """Reseal every stored token with the first key of HOOKYARD_TOKEN_KEYS (after a key rotation)."""
    counts = connections.rekey(_engine(), box_for(get_settings()), _actor())
    if as_json:
        print_json(counts)
        return
    console.print(f"resealed {counts['connections']} connection(s) and {counts['states']} pending install(s)")


@connections_cli.command("new-key")
def connections_new_key() -> None:
    """Print a new key for HOOKYARD_TOKEN_KEYS (put it first in the list to rotate)."""
    print(new_key())
    err.print(
        f"add it to {TOKEN_KEYS_VAR} (comma-separated, newest first), then run `hookyard connections rekey`"
    )
