"""`hookyard rules …`: check, list, test and simulate the automation rules of the folder the sources
file names."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from events import runs
from events.db import utcnow
from events.dlq import parse_duration, parse_value
from events.settings import get_settings
from events.sources import Source, environment, load_sources, rules_dir
from ops.cli_support import CannotRun, JsonOpt, print_json
from ops.database import open_database
from ops.tables import print_table
from rules import trial
from rules.loader import load_rules
from rules.ruleset import Rule, RuleSet
from schemas.envelope import Envelope
from schemas.errors import HookyardError

rules_cli = typer.Typer(help="Automation rules: check, list, test, simulate.", no_args_is_help=True)
console = Console(soft_wrap=True)
TABLE_ROOM = 48  # columns a rules table needs besides the name column

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


def load_configured() -> tuple[dict[str, Source], RuleSet]:
    """The configured sources and rules, validated (ConfigError → exit 2): every command that runs
    workers or acts on rules starts with this."""
    settings = get_settings()
    sources = load_sources(settings.config, settings.secrets_file)
    folder = rules_dir(settings.config)
    if folder is None:
        return sources, RuleSet(())
    return sources, load_rules(folder, sources=sources.keys(), env=environment(settings.secrets_file))


def _rule(name: str, folder: Path | None = None) -> Rule:
    _, rules = _load(folder)
    rule = rules.get(name)
    if rule is None:
        names = ", ".join(r.name for r in rules.rules) or "none"
        raise typer.BadParameter(f"no rule {name!r}; rules: {names}")
    return rule


def _engine() -> Any:
    return open_database(get_settings())


def _counts() -> dict[str, dict[str, int]] | None:
    """What each rule did, from the action runs; None when there is no database to tell (then say
    so): the rule files are listed all the same."""
    try:
        with _engine().connect() as conn:
            return runs.counts_by_rule(conn)
    except (CannotRun, SQLAlchemyError) as exc:
        Console(stderr=True).print(f"(no counts: {exc})", highlight=False, markup=False)
        return None


COUNTS = ("matched", "fired", "failed", "throttled", "shadow")


def _row(rule: Rule, counts: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": rule.name,
        "mode": rule.mode,
        "enabled": rule.enabled,
        "types": list(rule.types),
        "actions": [a.type for a in rule.actions],
        "file": rule.file,
    }
    if counts is not None:
        row["counts"] = counts.get(rule.name, dict.fromkeys((*COUNTS, "pending"), 0))
    return row


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


@rules_cli.command("check")
def rules_check(folder: DirOpt = None, as_json: JsonOpt = False) -> None:
    """Validate every rule file (exit 2 with one line on the first mistake); show the index."""
    where, rules = _load(folder)
    exact = {t: [r.name for r in found] for t, found in sorted(rules.exact.items())}
    globs = [(pattern, r.name) for pattern, r in rules.globs]
    if as_json:
        index = {"exact": exact, "globs": [{"glob": g, "rule": name} for g, name in globs]}
        print_json({"folder": None if where is None else str(where), "rules": len(rules), "index": index})
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
    """The rules: name, mode, enabled, event types, actions, and what each did (from its action runs:
    matched, throttled and shadow count events; fired and failed count actions)."""
    _, rules = _load(folder)
    counts = _counts()
    if as_json:
        print_json([_row(r, counts) for r in rules.rules])
        return
    _print_rules(rules)
    if counts is not None and rules.rules:
        console.print()
        columns = (*COUNTS, "pending")
        print_table(
            console,
            ("rule", *columns),
            [[r.name, *(str(counts.get(r.name, {}).get(c, 0)) for c in columns)] for r in rules.rules],
            keep=["rule"],
        )


def _event(event: str | None, sample: str | None, sets: list[str] | None) -> Envelope:
    if (event is None) == (sample is None):
        raise typer.BadParameter("give --event FILE|ID or --sample SOURCE")
    if sample is not None:
        settings = get_settings()
        source = load_sources(settings.config, settings.secrets_file).get(sample)
        if source is None:
            raise typer.BadParameter(f"no source {sample!r} in {settings.config}")
        pairs = []
        for item in sets or ():
            path, sep, raw = item.partition("=")
            if not sep or not path:
                raise typer.BadParameter(f"{item!r}: expected PATH=VALUE")
            pairs.append((path, parse_value(raw)))
        try:
            return trial.sample_event(source, pairs, utcnow().timestamp())
        except HookyardError as exc:
            raise typer.BadParameter(f"the edited sample: {exc}") from None
    assert event is not None
    if Path(event).is_file():
        return trial.file_event(Path(event), utcnow())
    found = trial.stored_event(_engine(), event)
    if found is None:
        raise typer.BadParameter(f"{event!r} is neither a file nor a stored event id (with a payload)")
    return found


@rules_cli.command("test")
def rules_test(
    name: Annotated[str, typer.Argument(help="The rule's name.")],
    event: Annotated[
        str | None,
        typer.Option("--event", help="A JSON file (as `events show --json` prints) or an event id."),
    ] = None,
    sample: Annotated[
        str | None, typer.Option("--sample", help="The connector's sample for this source.")
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", help="PATH=VALUE: change the sample's JSON first (repeatable)."),
    ] = None,
    folder: DirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Dry run on one event: which tests held, and the actions it would take, rendered. Nothing is sent."""
    rule = _rule(name, folder)
    result = trial.try_rule(rule, _event(event, sample, sets))
    if as_json:
        print_json(result)
        return
    if "error" in result:
        console.print(f"[red]{escape(result['error'])}[/]")
        raise typer.Exit(1)
    for line in result["explain"]:
        console.print(escape(line), highlight=False)
    if not result["matched"]:
        console.print(f"→ no match: rule {rule.name} would do nothing for this event")
        return
    console.print(f"→ match ({rule.mode}{'' if rule.enabled else ', disabled in its file'}); it would:")
    for action in result["actions"]:
        what = action["error"] or orjson.dumps(action["params"]).decode()
        console.print(f"  [{action['index']}] {action['type']}: {escape(what)}", highlight=False)
        for missing in action["missing"]:
            console.print(f"      [yellow]missing, rendered empty:[/] {escape(missing)}", highlight=False)


@rules_cli.command("simulate")
def rules_simulate(
    name: Annotated[str, typer.Argument(help="The rule's name.")],
    since: Annotated[str, typer.Option(help="How far back: 90m, 12h, 7d, 2w.")] = "7d",
    until: Annotated[
        datetime | None, typer.Option(help="Up to this time (ISO-8601, UTC); default now.")
    ] = None,
    sample: Annotated[int, typer.Option(help="Show this many of the events it would match.")] = 5,
    folder: DirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Over the events already stored: how many the rule would match and fire for (after its
    throttle), and a sample. Read-only: nothing is recorded or sent."""
    rule = _rule(name, folder)
    try:
        start = utcnow() - parse_duration(since)
    except HookyardError as exc:
        raise typer.BadParameter(str(exc)) from None
    end = None if until is None else until if until.tzinfo else until.replace(tzinfo=start.tzinfo)
    result = trial.simulate(_engine(), rule, since=start, until=end, sample=max(sample, 0))
    if as_json:
        print_json(result)
        return
    console.print(
        f"rule {rule.name} over events since {result['since'][:19]}: scanned {result['scanned']}, "
        f"would match {result['matched']}, throttle holds back {result['throttled']}, "
        f"would fire {result['would_fire']}"
        + (f" ({result['unreadable']} unreadable)" if result["unreadable"] else "")
    )
    for picked in result["sample"]:
        actions = "; ".join(f"{a['type']} {orjson.dumps(a['params']).decode()}" for a in picked["actions"])
        console.print(f"  {picked['event_id']}  {picked['type']}  {escape(actions)}", highlight=False)
