"""`hookyard rules …`: check and list the automation rules of the folder the sources file names."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from events.settings import get_settings
from events.sources import environment, load_sources, rules_dir
from ops.tables import print_table
from rules.loader import load_rules
from rules.ruleset import Rule, RuleSet

rules_cli = typer.Typer(help="Automation rules: check and list.", no_args_is_help=True)
console = Console(soft_wrap=True)
TABLE_ROOM = 48  # columns a rules table needs besides the name column

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
DirOpt = Annotated[
    Path | None, typer.Option("--dir", help="Rules folder (default: rules_dir of the sources file).")
]


def _load(folder: Path | None) -> tuple[Path | None, RuleSet]:
    """The rules folder and its rules, checked against the configured sources (ConfigError → exit 2)."""
    settings = get_settings()
    sources = load_sources(settings.config, settings.secrets_file)
    folder = folder or rules_dir(settings.config)
    if folder is None:
        return None, RuleSet(())
    return folder, load_rules(folder, sources=sources.keys(), env=environment(settings.secrets_file))


def _row(rule: Rule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "mode": rule.mode,
        "enabled": rule.enabled,
        "types": list(rule.types),
        "actions": [a.type for a in rule.actions],
        "file": rule.file,
    }


def _print_rules(rules: RuleSet) -> None:
    """A table; when the longest name leaves the other columns no room, a block per rule instead
    (at 80 columns a 63-character name would squeeze types and actions out of the table)."""
    headers = ["name", "mode", "enabled", "types", "actions"]
    rows = [
        [
            r.name,
            r.mode,
            "yes" if r.enabled else "no",
            ", ".join(r.types),
            ", ".join(a.type for a in r.actions),
        ]
        for r in rules.rules
    ]
    if max((len(r.name) for r in rules.rules), default=0) + TABLE_ROOM <= console.width:
        print_table(console, headers, rows, keep=["name"])
        return
    for name, *details in rows:
        console.print(escape(name))
        console.print(
            "  " + " · ".join(f"{h} {escape(v)}" for h, v in zip(headers[1:], details, strict=True))
        )


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data).decode() + "\n")


@rules_cli.command("check")
def rules_check(folder: DirOpt = None, as_json: JsonOpt = False) -> None:
    """Validate every rule file (exit 2 with one line on the first mistake); show the index."""
    where, rules = _load(folder)
    exact = {t: [r.name for r in found] for t, found in sorted(rules.exact.items())}
    globs = [(pattern, r.name) for pattern, r in rules.globs]
    if as_json:
        index = {"exact": exact, "globs": [{"glob": g, "rule": name} for g, name in globs]}
        _print_json({"folder": None if where is None else str(where), "rules": len(rules), "index": index})
        return
    if where is None:
        console.print(f"no rules: {escape(str(get_settings().config))} sets no rules_dir")
        return
    console.print(f"[green]{len(rules)} rule{'' if len(rules) == 1 else 's'} OK[/] in {escape(str(where))}")
    if rules.rules:
        _print_rules(rules)
        console.print("index by event type:")
        for event_type, names in exact.items():
            console.print(f"  {escape(event_type)} → {', '.join(names)}")
        for glob, name in globs:
            console.print(f"  {escape(glob)} (glob) → {name}")


@rules_cli.command("list")
def rules_list(folder: DirOpt = None, as_json: JsonOpt = False) -> None:
    """The rules: name, mode, enabled, event types and actions."""
    _, rules = _load(folder)
    if as_json:
        _print_json([_row(r) for r in rules.rules])
        return
    _print_rules(rules)
