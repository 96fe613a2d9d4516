"""The database as a command needs it, or one line saying what is wrong and how to fix it.

Every CLI command that reads or writes the database opens it through `open_database`, which refuses
(`CannotRun`: one line, exit code 2, nothing created) when

- `HOOKYARD_DATABASE_URL` is not a URL SQLAlchemy can use (unparseable, unknown dialect);
- the command runs outside a project directory: the URL is the default (a SQLite file relative to
  the working directory) and the sources file (`hookyard.toml`, or `--config`/`HOOKYARD_CONFIG`)
  is not there — the default would otherwise make a stray `.hookyard/hookyard.db` wherever it ran;
- a SQLite file that should exist does not (only `migrate` and `dev` create one);
- the server cannot be reached or refuses us (the reason, never the password);
- the schema is missing or older than this code (`run hookyard migrate`); a newer one is fine (a
  rolling deploy: a release migrated it and this process is the old one).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from events.db import make_engine
from events.migrate import SchemaState, schema_state
from events.settings import Settings
from ops.cli_support import CannotRun

CONNECT_TIMEOUT_S = 5.0
URL_HINT = "set HOOKYARD_DATABASE_URL to sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE"


def database_url(settings: Settings) -> URL:
    """The configured URL, parsed, with a dialect SQLAlchemy can load."""
    raw = settings.database_url.get_secret_value()
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise CannotRun(f"HOOKYARD_DATABASE_URL is not a database URL: {URL_HINT}") from None
    try:
        url.get_dialect()
    except NoSuchModuleError:
        raise CannotRun(
            f"HOOKYARD_DATABASE_URL names an unknown database kind {url.drivername!r}: {URL_HINT}"
        ) from None
    return url


def shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def in_project(settings: Settings) -> bool:
    """A project directory has its sources file; an explicit database URL works anywhere."""
    return "database_url" in settings.model_fields_set or settings.config.exists()


def _sqlite_file(url: URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database or "")


def _reason(exc: DBAPIError) -> str:
    """The driver's reason in a few words: 'Connection refused', 'database "x" does not exist'."""
    cause = exc.orig or exc
    lines = str(cause).strip().splitlines()
    text = lines[0].rsplit(" failed: ", 1)[-1] if lines else type(cause).__name__
    return " ".join(text.removeprefix("FATAL:").split())


def open_database(settings: Settings, *, create: bool = False, project: bool = True) -> Engine:
    """An engine on a reachable database at this code's schema (with `create`: any schema, and a
    SQLite file may be created — `migrate` and `dev`). `project=False` skips the directory check
    (for commands that found their sources file already)."""
    url = database_url(settings)
    if project and not in_project(settings):
        raise CannotRun(
            f"no {settings.config} in {Path.cwd()}: run hookyard in your project's directory, or name "
            "the sources file with --config (HOOKYARD_CONFIG) or the database with HOOKYARD_DATABASE_URL"
        )
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None and not create and not sqlite_file.exists():
        raise CannotRun(f"no database at {sqlite_file}: run `hookyard migrate` first")
    engine = make_engine(settings.database_url.get_secret_value(), connect_timeout_s=CONNECT_TIMEOUT_S)
    try:
        with engine.connect() as conn:
            state = schema_state(conn)
    except DBAPIError as exc:
        engine.dispose()
        raise CannotRun(
            f"cannot use the database {shown(url)} ({_reason(exc)}): check HOOKYARD_DATABASE_URL "
            "and that the server is running"
        ) from None
    if not create and state in (SchemaState.NOT_MIGRATED, SchemaState.BEHIND):
        engine.dispose()
        what = "has no Hookyard schema" if state is SchemaState.NOT_MIGRATED else "is at an older schema"
        raise CannotRun(f"the database {shown(url)} {what}: run `hookyard migrate`")
    return engine
