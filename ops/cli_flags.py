"""`hookyard flags …`: turn a rule, or every rule for a source, on or off without a deploy."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.console import Console

from events import runtime_flags
from events.settings import get_settings
from ops.cli_rules import load_configured
from ops.cli_support import JsonOpt, print_json
from ops.database import open_database
from ops.tables import print_table, when

flags_cli = typer.Typer(help="Runtime flags: rules and sources on or off, audited.", no_args_is_help=True)
console = Console()
STATES = {"on": True, "off": False, "clear": None}


def check_name(kind: str, name: str) -> None:
    """A flag names a configured source or a loaded rule (BadParameter, exit 2, otherwise)."""
    if kind not in runtime_flags.KINDS:
        raise typer.BadParameter(f"{kind!r}: a flag is for a rule or a source")
    sources, rules = load_configured()
    known = [r.name for r in rules.rules] if kind == "rule" else list(sources)
    if name not in known:
        raise typer.BadParameter(f"no {kind} {name!r}; {kind}s: {', '.join(sorted(known)) or 'none'}")


@flags_cli.command("list")
def flags_list(as_json: JsonOpt = False) -> None:
    """The flags that are set (anything not listed follows its rule file, or is on)."""
    with open_database(get_settings()).connect() as conn:
        rows = runtime_flags.listing(conn)
    if as_json:
        print_json(rows)
        return
    print_table(
        console,
        ("kind", "name", "state", "since", "by"),
        [
            (r["kind"], r["name"], "on" if r["enabled"] else "off", when(r["updated_at"]), r["updated_by"])
            for r in rows
        ],
        keep=("name",),
    )


@flags_cli.command("set")
def flags_set(
    kind: Annotated[str, typer.Argument(help="rule | source")],
    name: Annotated[str, typer.Argument(help="The rule's or the source's name.")],
    state: Annotated[str, typer.Argument(help="on | off | clear (back to the rule file; a source: on)")],
    as_json: JsonOpt = False,
) -> None:
    """Turn a rule or a source's rules on or off; workers follow within HOOKYARD_RULES__FLAGS_CACHE_S."""
    if state not in STATES:
        raise typer.BadParameter(f"{state!r}: say on, off or clear")
    check_name(kind, name)
    with open_database(get_settings()).begin() as conn:
        runtime_flags.put(conn, kind, name, STATES[state], f"cli:{getpass.getuser()}")
    result = {"kind": kind, "name": name, "enabled": STATES[state]}
    print_json(result) if as_json else console.print(f"{kind} {name}: {state}")
