"""Run the Alembic migrations programmatically (`hookyard migrate`), and tell whether a database is
at the latest schema (`/readyz`, the ingress's `not_migrated`)."""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from events.db import sync_url

SCRIPTS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"
_UNDEFINED = ("42P01", "42703")  # PostgreSQL SQLSTATEs: undefined table, undefined column


class SchemaState(StrEnum):
    CURRENT = "ok"
    NOT_MIGRATED = "not_migrated"  # no Hookyard schema at all
    BEHIND = "behind"  # an older revision: run `hookyard migrate`
    NEWER = "newer"  # a revision this code does not know: a newer release migrated it (rolling deploy)


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.set_main_option("sqlalchemy.url", sync_url(database_url).replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


@cache
def _scripts() -> ScriptDirectory:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    return ScriptDirectory.from_config(cfg)


def schema_state(conn: Connection) -> SchemaState:
    """Compare the database's Alembic revision with the newest this code ships."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return SchemaState.NOT_MIGRATED
    current = {row[0] for row in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))}
    scripts = _scripts()
    if not current:
        return SchemaState.NOT_MIGRATED
    if current == set(scripts.get_heads()):
        return SchemaState.CURRENT
    known = {script.revision for script in scripts.walk_revisions()}
    return SchemaState.BEHIND if current <= known else SchemaState.NEWER


def missing_schema(exc: BaseException) -> bool:
    """Whether a database error says one of our tables or columns does not exist."""
    orig = getattr(exc, "orig", None) or exc
    if getattr(orig, "sqlstate", None) in _UNDEFINED:
        return True
    message = str(orig)
    return message.startswith(("no such table", "no such column")) or " has no column named " in message
