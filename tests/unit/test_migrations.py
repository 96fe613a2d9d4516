"""The migrations form one line and build exactly the tables the code declares."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from events.db import make_engine, metadata
from events.migrate import alembic_config, upgrade


def test_one_head() -> None:
    """Two branches each adding a migration on the same parent would leave two heads: refused here."""
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, heads


def test_the_migrated_schema_matches_the_declared_tables(tmp_path: Path) -> None:
    """Upgrading an empty SQLite database gives the tables, columns and indexes events.db declares."""
    url = f"sqlite:///{tmp_path}/m.db"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []
