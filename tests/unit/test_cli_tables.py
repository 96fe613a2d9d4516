"""Every table the CLI prints keeps whole ids on an 80-column terminal; long text wraps instead."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import update

from events.db import dead_letters, make_engine
from events.migrate import upgrade
from tests.unit.test_dlq import add_dead

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def hookyard(cwd: Path, *args: str) -> str:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_")}, "COLUMNS": "80"}
    result = subprocess.run(
        [sys.executable, "-m", "ops.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_tables_at_80_columns_show_every_id_whole(tmp_path: Path) -> None:
    """events list, dlq list and tokens list at 80 columns: each id is printed whole on one line, and a
    long error message is wrapped to the end (its last words are still there)."""
    (tmp_path / "hookyard.toml").write_text(
        '[sources.a-rather-long-source-name]\nconnector = "shopify"\nsecrets = ["s3cret-s3cret"]\n'
    )
    url = f"sqlite:///{tmp_path}/.hookyard/hookyard.db"
    (tmp_path / ".hookyard").mkdir()
    upgrade(url)
    engine = make_engine(url)
    ids = add_dead(engine, 3)
    cause = "the cause comes last: downstream answered 503 Service Unavailable"
    with engine.begin() as conn:
        conn.execute(
            update(dead_letters).values(
                type="shopify.some/very_long/topic_name_that_needs_room",
                error_message="forward to https://internal.example/hooks/shop failed; " * 3 + cause,
            )
        )
    engine.dispose()
    token_id = hookyard(tmp_path, "tokens", "create", "--name", "a-dashboard-with-a-long-name", "--json")
    for command in (("events", "list"), ("dlq", "list")):
        printed = hookyard(tmp_path, *command)
        assert set(UUID.findall(printed)) == set(ids), printed
        assert max(len(line) for line in printed.splitlines()) <= 80
    printed = " ".join(hookyard(tmp_path, "dlq", "list").split())
    assert printed.count(cause) == 3  # the end of each message survives: it wraps, it is not cut
    tokens = hookyard(tmp_path, "tokens", "list")
    assert UUID.findall(tokens) == UUID.findall(hookyard(tmp_path, "tokens", "list", "--json"))
    assert len(UUID.findall(tokens)) == 1 and token_id
    assert "a-rather-long-source-name" in hookyard(tmp_path, "sources", "list")
