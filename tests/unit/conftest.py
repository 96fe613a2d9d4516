"""Unit-test fixtures: a migrated SQLite database per test, no services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from events.db import make_engine
from events.migrate import upgrade


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh database at the latest schema."""
    url = f"sqlite:///{tmp_path}/unit.db"
    upgrade(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()


from tests.unit.oauth_kit import token_keys, world  # noqa: E402, F401  (fixtures of the OAuth tests)
