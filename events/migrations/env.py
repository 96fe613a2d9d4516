"""Alembic environment: migrations run on SQLite and PostgreSQL from the same scripts."""

from alembic import context

from events.db import make_engine, metadata

config = context.config
engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
with engine.connect() as connection:
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=engine.dialect.name == "sqlite"
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
