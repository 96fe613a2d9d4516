"""`hookyard`: the operator's command line."""

from __future__ import annotations

import base64
import os
import secrets as secrets_lib
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from pydantic import SecretStr
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.engine import make_url

from connectors import registry
from events.db import EventState, event_dict, events, row_dict
from events.dlq import parse_value, set_path
from events.log import JSON, configure_logging
from events.multiprocess import prepare_process_dir
from events.secretbox import TOKEN_KEYS_VAR, new_key
from events.settings import EMBEDDED_IDS_PER_MESSAGE, Settings, get_settings
from events.sources import Source, load_sources, read_secrets_file
from ops.cli_connections import connections_cli
from ops.cli_dlq import dlq_cli, sources_cli, tokens_cli
from ops.cli_flags import flags_cli
from ops.cli_rules import load_configured, rules_cli
from ops.cli_status import status
from ops.cli_support import (
    CannotRun,
    JsonOpt,
    check_port,
    finish_commands,
    hookyard_command,
    print_json,
    wait_for_an_end,
    wait_until_up,
)
from ops.cli_sync import sync_cli
from ops.database import database_url, open_database
from ops.tables import print_table, when
from schemas.errors import ConfigError

cli = typer.Typer(
    help="Hookyard: verified webhooks, durable inbox, reliable Celery workers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
events_cli = typer.Typer(help="Inspect stored events.", no_args_is_help=True)
connectors_cli = typer.Typer(help="Built-in and installed connectors.", no_args_is_help=True)
cli.add_typer(events_cli, name="events")
cli.add_typer(connectors_cli, name="connectors")
cli.add_typer(dlq_cli, name="dlq")
cli.add_typer(tokens_cli, name="tokens")
cli.add_typer(sources_cli, name="sources")
cli.add_typer(rules_cli, name="rules")
cli.add_typer(flags_cli, name="flags")
cli.add_typer(connections_cli, name="connections")
cli.add_typer(sync_cli, name="sync")
cli.command("status")(status)
console = Console()
err_console = Console(stderr=True)

EventId = Annotated[str, typer.Argument(help="The event's id (events list shows it).", metavar="EVENT_ID")]

DEV_HOST = "127.0.0.1"
DEV_START_TIMEOUT_S = 60.0
DEMO_SOURCES = {
    "shop": ("shopify", "SHOPIFY_WEBHOOK_SECRET", ""),
    "payments": ("stripe", "STRIPE_WEBHOOK_SECRET", "whsec_"),
    "github": ("github", "GITHUB_WEBHOOK_SECRET", ""),
    "svix": ("standard-webhooks", "STANDARD_WEBHOOK_SECRET", "whsec_"),
    "helpdesk": ("zendesk", "ZENDESK_WEBHOOK_SECRET", ""),
}
# helpdesk also gets an OAuth connection to the fake provider (`python -m tests.fakes oauth --port 9300`)
DEMO_OAUTH = {
    "helpdesk": "[sources.helpdesk.oauth]\n"
    'authorize_url = "${DEMO_OAUTH_URL}/oauth/authorize"\n'
    'token_url = "${DEMO_OAUTH_URL}/oauth/token"\n'
    'revoke_url = "${DEMO_OAUTH_URL}/oauth/revoke"\n'
    'client_id = "${DEMO_OAUTH_CLIENT_ID}"\n'
    'client_secret = "${DEMO_OAUTH_CLIENT_SECRET}"\n'
}
DEMO_OAUTH_ENV = {  # the fake provider's default client: demo values, not credentials
    "DEMO_OAUTH_URL": "http://127.0.0.1:9300",
    "DEMO_OAUTH_CLIENT_ID": "hookyard-demo",
    "DEMO_OAUTH_CLIENT_SECRET": "demo-secret",
}

# The README's sync walk-through: uncomment to sync the demo Stripe source from the fake Stripe API.
DEMO_SYNC = """# Sync `payments` from a fake Stripe: run `python -m tests.fakes stripe --port 9100` in the
# repository, uncomment these lines and restart `hookyard dev` (README, "Syncs").
# [sources.payments.api]
# base_url = "http://127.0.0.1:9100"
# token = "sk_test_fake"
# [sources.payments.sync]
# events = "1m"
"""


@cli.callback()
def main_options(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Sources file (TOML); default hookyard.toml. Before or after the command.",
            envvar="HOOKYARD_CONFIG",
        ),
    ] = None,
) -> None:
    if config is not None:
        use_config(config)


def use_config(config: Path) -> None:
    """The sources file named by --config/-c (before or after the command) or HOOKYARD_CONFIG."""
    os.environ["HOOKYARD_CONFIG"] = str(config)  # children (web, worker) inherit it
    get_settings.cache_clear()


def _sources() -> dict[str, Source]:
    settings = get_settings()
    return load_sources(settings.config, settings.secrets_file)


def _configured() -> dict[str, Source]:
    """Sources and rules, validated: a process that runs them refuses to start on a mistake in either."""
    sources, _ = load_configured()
    return sources


def _demo_secret(prefix: str) -> str:
    """Stripe and Standard Webhooks secrets are `whsec_` + base64; the others are opaque."""
    if prefix == "whsec_":
        return "whsec_" + base64.b64encode(os.urandom(24)).decode()
    return secrets_lib.token_hex(24)


def bootstrap_demo(config: Path, secrets_file: Path | None) -> None:
    """First run of `hookyard dev`: a demo sources file and random secrets outside the repo."""
    if config.exists():
        return
    lines = [
        "# Created by `hookyard dev`. Secrets come from the environment or the secrets file.",
        'rules_dir = "rules"  # automation rules, one TOML file each (docs/rules.md)\n',
    ]
    (config.parent / "rules").mkdir(exist_ok=True)
    demo = {name: spec for name, spec in DEMO_SOURCES.items() if spec[0] in registry.names()}
    for name, (connector, var, _) in demo.items():
        lines.append(
            f'[sources.{name}]\nconnector = "{connector}"\nsecrets = ["${{{var}}}"]\n'
            + DEMO_OAUTH.get(name, "")
        )
    if "payments" in demo:
        lines.append(DEMO_SYNC)
    config.write_text("\n".join(lines))
    if secrets_file is not None:
        secrets_file.parent.mkdir(parents=True, exist_ok=True)
        have = read_secrets_file(secrets_file)
        with secrets_file.open("a") as fh:
            for _, var, prefix in demo.values():
                if var not in have and var not in os.environ:
                    fh.write(f"{var}={_demo_secret(prefix)}\n")
            extra = {**DEMO_OAUTH_ENV, TOKEN_KEYS_VAR: new_key()} if "helpdesk" in demo else {}
            for var, value in extra.items():
                if var not in have and var not in os.environ:
                    fh.write(f"{var}={value}\n")
        secrets_file.chmod(0o600)
    console.print(f"[green]created[/] {config} (demo sources) and {secrets_file} (random secrets)")


@cli.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from events.migrate import upgrade

    settings = get_settings()
    open_database(settings, create=True).dispose()  # reachable, and in a project directory
    upgrade(settings.database_url.get_secret_value())
    console.print(f"[green]database is at the latest schema[/] ({_redact(settings.database_url)})")


def _redact(url: SecretStr) -> str:
    return make_url(url.get_secret_value()).render_as_string(hide_password=True)


@cli.command()
def web(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Ingress processes.")] = 1,
) -> None:
    """Run the webhook ingress (uvicorn)."""
    _configured()  # refuse to start on a bad config, before binding the port
    import uvicorn

    settings = get_settings()
    database_url(settings)  # a URL that can never work stops it here; an outage is for /readyz
    prepare_process_dir(settings.metrics.dir, "web")  # before any metric exists, here or in a worker
    configure_logging(settings.log_format, settings.log_level)
    from ops.web import JsonErrorsProtocol  # imports the metrics: only once their directory is chosen

    uvicorn.run(
        "ops.web:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,  # uvicorn's records reach the root logger, rendered by events.log
        log_level="warning",
        access_log=False,
        loop="auto",
        http=JsonErrorsProtocol,
        lifespan="on",
        timeout_graceful_shutdown=settings.ingress.shutdown_grace_s,
    )


def worker_queues(
    sources: Mapping[str, Source], groups: str | None = None, queues: str | None = None
) -> list[str]:
    """Every configured queue, those of the named groups (`events,actions`) or the named queues; a
    group or a queue Hookyard does not have stops the worker (it would wait on it forever)."""
    from events.queue import hookyard_queues, queue_groups

    if queues is not None:
        known = hookyard_queues(registry.names())
        named = [q.strip() for q in queues.split(",") if q.strip()]
        unknown = [q for q in named if q not in known] or ([] if named else [""])
        if unknown:
            others = ", ".join(
                n for group, names in queue_groups([]).items() if group != "events" for n in names
            )
            raise CannotRun(
                f"--queues: {unknown[0]!r} is not a Hookyard queue (hookyard.<connector>, {others})"
            )
        return named
    vendors = [s.connector for s in sources.values()]
    if groups is None:
        return hookyard_queues(vendors)
    known_groups = queue_groups(vendors)
    wanted = [g.strip() for g in groups.split(",") if g.strip()]
    unknown = [g for g in wanted if g not in known_groups]
    if unknown or not wanted:
        raise CannotRun(f"--group {groups!r}: name one or more of {', '.join(known_groups)}")
    return [name for g in wanted for name in known_groups[g]]


def schedule_syncs(sources: Mapping[str, Source]) -> None:
    """Add every configured stream (and the sweeper) to beat's schedule, from the validated sources."""
    from events.queue import app, sync_schedule

    app.conf.beat_schedule.update(sync_schedule(sources, get_settings().sync.sweep_interval_s))


@cli.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    queues: Annotated[str | None, typer.Option(help="Comma-separated queues (default: all).")] = None,
    group: Annotated[
        str | None,
        typer.Option(help="Comma-separated queue groups instead: events, actions, maintenance, sync."),
    ] = None,
    beat: Annotated[
        bool, typer.Option("--beat", help="Embed the scheduler (it sends while it holds the beat lease).")
    ] = False,
    pool: Annotated[str, typer.Option(help="Celery pool.")] = "prefork",
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve this worker's metrics on this port (a machine without `hookyard web`)."),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address for --metrics-port.")] = "127.0.0.1",
    hostname: Annotated[
        str | None,
        typer.Option(help="Celery node name (default celery@HOST); each worker on a machine needs its own."),
    ] = None,
) -> None:
    """Run a Celery worker on the vendor queues."""
    configured = _configured()  # refuse to start on a bad config, even with --queues
    if queues is not None and group is not None:
        raise CannotRun("--queues and --group: give one of them")
    consumed = ",".join(worker_queues(configured, group, queues))
    settings = get_settings()
    # a worker without its database, or on one never migrated, could only fail every task: say so once
    open_database(settings, project=False).dispose()
    prepare_process_dir(settings.metrics.dir, "worker")  # before any metric exists, here or in a child
    configure_logging(settings.log_format, settings.log_level)  # Celery warns before it sets up logging
    from events.queue import app

    if metrics_port is not None:
        _serve_own_metrics(metrics_host, metrics_port)
    argv = [
        *_celery_quiet(),
        "worker",
        "--loglevel",
        "INFO",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency or settings.worker.concurrency),
        "-Q",
        consumed,
        "--without-gossip",
        "--without-mingle",
    ]
    if hostname:
        argv += ["--hostname", hostname]
    elif group is not None:  # one Celery node per group on a machine: events@host, actions@host, …
        argv += ["--hostname", f"{group.replace(',', '+')}@%h"]
    if beat:
        argv.append("--beat")
        schedule_syncs(configured)
    app.worker_main(argv)


@cli.command()
def beat(
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve this beat's metrics on this port (a machine without `hookyard web`)."),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address for --metrics-port.")] = "127.0.0.1",
) -> None:
    """Run the scheduler (relay, monitor, retention, syncs). Run two or more: one leads, the others
    stand by and take over within 1.25 × HOOKYARD_BEAT__LEASE_S."""
    configured = _configured()  # the tasks it schedules run on these sources: a bad config stops it here too
    settings = get_settings()
    open_database(settings, project=False).dispose()  # the lease lives there: reachable and migrated
    prepare_process_dir(settings.metrics.dir, "beat")  # before any metric exists
    configure_logging(settings.log_format, settings.log_level)
    from events.queue import app

    if metrics_port is not None:
        _serve_own_metrics(metrics_host, metrics_port)
    schedule_syncs(configured)
    app.start([*_celery_quiet(), "beat", "--loglevel", "INFO"])


def _celery_quiet() -> list[str]:
    """No plain-text start-up banner when every line must be JSON."""
    return ["--quiet"] if get_settings().log_format == JSON else []


def _serve_own_metrics(host: str, port: int) -> None:
    """The metrics of this process and its children (a worker's pool), on their own port
    (Prometheus text format)."""
    from prometheus_client import CollectorRegistry, start_http_server

    from events.exposition import own_collector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(own_collector())
    start_http_server(port, addr=host, registry=registry)


@cli.command()
def dev(
    port: Annotated[int, typer.Option(help="Ingress port.")] = 8000,
) -> None:
    """Everything on this machine, nothing to install: ingress, worker and beat on SQLite.
    Writes a demo hookyard.toml first when no sources file is there and none is named."""
    settings = get_settings()
    _check_dev(settings, port)  # before anything is written or started
    bootstrap_demo(settings.config, settings.secrets_file)
    os.environ.setdefault("HOOKYARD_LOG_FORMAT", "console")
    os.environ.setdefault("HOOKYARD_IDS_PER_MESSAGE", str(EMBEDDED_IDS_PER_MESSAGE))  # children inherit
    os.environ.setdefault("HOOKYARD_OAUTH__PUBLIC_URL", f"http://127.0.0.1:{port}")  # OAuth callbacks
    get_settings.cache_clear()
    _configured()
    migrate()
    base = [sys.executable, "-m", "ops.cli"]
    children = {
        "web": subprocess.Popen([*base, "web", "--port", str(port)]),
        "worker": subprocess.Popen([*base, "worker", "--beat", "--concurrency", "2"]),
    }
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops everything as Ctrl-C does
    ended: str | None = None
    try:
        if wait_until_up(DEV_HOST, port, children, DEV_START_TIMEOUT_S, err_console):
            console.print(
                f"[bold green]Hookyard is up[/]: POST http://{DEV_HOST}:{port}/webhooks/<source>  "
                f"(sources: {', '.join(_sources())}). Try: {hookyard_command()} send shop",
                soft_wrap=True,  # one line however narrow the terminal: the command stays whole
            )
            ended = wait_for_an_end(children, err_console)
        else:
            ended = "web"
    except KeyboardInterrupt:
        pass
    finally:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children.values():
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    if ended is not None:  # not stopped by Ctrl-C or SIGTERM: a part of it failed
        raise typer.Exit(1)


def _check_dev(settings: Settings, port: int) -> None:
    """A named sources file that is missing is a mistake, not a place for the demo; a database URL
    that cannot work and a busy port stop `dev` before it writes or starts anything."""
    database_url(settings)
    if os.environ.get("HOOKYARD_CONFIG") and not settings.config.exists():
        raise ConfigError(
            f"{settings.config}: sources file not found (named by --config or HOOKYARD_CONFIG; "
            "the demo is written only by a bare `hookyard dev` where there is no hookyard.toml)"
        )
    if settings.config.exists():
        _sources()
    check_port(DEV_HOST, port)
    if database_url(settings).get_backend_name() != "sqlite":
        open_database(settings, create=True, project=False).dispose()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@cli.command()
def send(
    source: Annotated[str, typer.Argument(help="A configured source name.", metavar="SOURCE")],
    sample: Annotated[
        bool,
        typer.Option(
            "--sample",
            help="The connector's sample is what send posts; kept for old scripts.",
            show_default=False,
        ),
    ] = True,
    url: Annotated[str, typer.Option(help="Ingress base URL.")] = "http://127.0.0.1:8000",
    count: Annotated[int, typer.Option(min=1, help="How many deliveries, each a new event.")] = 1,
    repeat: Annotated[
        int, typer.Option(min=1, help="Send each delivery this many times, byte for byte (same delivery id).")
    ] = 1,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="PATH=VALUE",
            help="Change the sample's JSON before signing (e.g. to break it). Repeatable.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign the connector's sample webhook and post it to the ingress, as the vendor would."""
    src = _sources().get(source)
    if src is None:
        raise ConfigError(f"no source named {source!r} in {get_settings().config}")
    connector = registry.get(src.connector)
    if sets and connector.sign is None:
        raise typer.BadParameter(f"connector {src.connector} cannot re-sign an edited sample")
    secret = src.secret_values()[0]
    results = []
    with httpx.Client(timeout=10) as client:
        for _ in range(count):
            now = time.time()
            req = connector.sample(secret, now, src.options)
            if sets and connector.sign is not None:
                body = orjson.loads(req.body)
                for item in sets:
                    path, _, raw = item.partition("=")
                    body = set_path(body, path, parse_value(raw))
                req = connector.sign(orjson.dumps(body), req.headers, secret, now, src.options)
            for _ in range(repeat):  # a vendor's redelivery: the very same request
                try:
                    resp = client.post(
                        f"{url.rstrip('/')}/webhooks/{source}", content=req.body, headers=req.headers
                    )
                except httpx.HTTPError as exc:
                    err_console.print(f"[red]cannot reach the ingress at {url}:[/] {exc}")
                    raise typer.Exit(1) from None
                results.append({"status": resp.status_code, "response": resp.json()})
    if as_json:
        print_json(results)
    else:
        for r in results:
            console.print(f"{r['status']} {orjson.dumps(r['response']).decode()}")
    if any(r["status"] >= 300 for r in results):
        raise typer.Exit(1)


@events_cli.command("list")
def events_list(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    state: Annotated[EventState | None, typer.Option(help="Only events in this state.")] = None,
    limit: Annotated[int, typer.Option(help="Newest N.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List stored events, newest first."""
    stmt = select(*(c for c in events.c if c.name not in ("body", "headers", "payload")))
    if source:
        stmt = stmt.where(events.c.source == source)
    if state:
        stmt = stmt.where(events.c.state == state)
    stmt = stmt.order_by(events.c.received_at.desc(), events.c.id.desc()).limit(limit)
    with open_database(get_settings()).connect() as conn:
        rows = [row_dict(r, exclude=("lease_token",)) for r in conn.execute(stmt)]
    if as_json:
        print_json(rows)
        return
    print_table(
        console,
        ("id", "source", "type", "state", "tries", "received at"),
        [
            (r["id"], r["source"], r["type"], r["state"], str(r["attempts"]), when(r["received_at"]))
            for r in rows
        ],
        keep=("id",),
    )


@events_cli.command("show")
def events_show(event_id: EventId, as_json: JsonOpt = False) -> None:
    """Show one event with its raw request."""
    with open_database(get_settings()).connect() as conn:
        row = conn.execute(select(events).where(events.c.id == event_id)).first()
    if row is None:
        console.print(f"[red]no event {event_id}[/]")
        raise typer.Exit(1)
    data = event_dict(row)
    if as_json:
        print_json(data)
    else:
        console.print_json(orjson.dumps(data).decode())


@connectors_cli.command("list")
def connectors_list(as_json: JsonOpt = False) -> None:
    """Connectors found through the `hookyard.connectors` entry points."""
    rows = [{"name": n, "package": registry.origin(n)} for n in registry.names()]
    if as_json:
        print_json(rows)
        return
    print_table(
        console, ("connector", "package"), [(r["name"], r["package"]) for r in rows], keep=("connector",)
    )


def command() -> Any:
    """The `hookyard` command tree, every command finished alike (see `ops.cli_support`)."""
    return finish_commands(typer.main.get_command(cli), use_config)


def main() -> None:
    # plain text: one line however long (rich would wrap it and read brackets as markup)
    try:
        command()(prog_name="hookyard")
    except ConfigError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        sys.exit(2)
    except CannotRun as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
