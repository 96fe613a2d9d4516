"""The command line: exit codes and the first-run experience."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )


def test_invalid_config_exits_2_with_one_readable_line(tmp_path: Path) -> None:
    """A bad sources file stops any command with exit code 2 and a message naming the field."""
    (tmp_path / "hookyard.toml").write_text('[sources.shop]\nconnector = "shopify"\nsecrets = [""]\n')
    result = run("web", cwd=tmp_path)
    assert result.returncode == 2
    assert "sources.shop.secrets" in result.stderr
    assert "Traceback" not in result.stderr


PROJECT = '[sources.shop]\nconnector = "shopify"\nsecrets = ["s3cret"]\n'


def test_migrate_then_events_list_json_on_the_embedded_default(tmp_path: Path) -> None:
    """In a project directory (it has hookyard.toml) and nothing else configured, migrate creates the
    SQLite database and events list answers []."""
    (tmp_path / "hookyard.toml").write_text(PROJECT)
    assert run("migrate", cwd=tmp_path).returncode == 0
    assert (tmp_path / ".hookyard" / "hookyard.db").exists()
    listed = run("events", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "[]"


def test_connectors_list_shows_built_ins(tmp_path: Path) -> None:
    """Built-in connectors are found through the entry-point group."""
    result = run("connectors", "list", "--json", cwd=tmp_path)
    assert result.returncode == 0
    assert {"name": "shopify", "package": "hookyard"} in json.loads(result.stdout)


def test_bulk_actions_without_a_person_to_ask_need_yes(tmp_path: Path) -> None:
    """--json, or input that is not a terminal, cannot answer the confirmation: exit 2, nothing done."""
    from events.db import make_engine
    from tests.unit.test_dlq import add_dead

    (tmp_path / "hookyard.toml").write_text(PROJECT)
    assert run("migrate", cwd=tmp_path).returncode == 0
    engine = make_engine(f"sqlite:///{tmp_path}/.hookyard/hookyard.db")
    add_dead(engine, 2)
    engine.dispose()
    for args in (
        ("dlq", "purge", "--where", "--json"),
        ("dlq", "purge", "--where"),
        ("dlq", "replay", "--where"),
    ):
        result = run(*args, cwd=tmp_path)  # stdin is not a terminal here
        assert result.returncode == 2, result.stderr
        assert "--yes" in result.stderr
    done = run("dlq", "purge", "--where", "--yes", "--json", cwd=tmp_path)
    assert (done.returncode, json.loads(done.stdout)) == (0, {"purged": 2})


BAD_SOURCES = {
    "option-type": ('options = { tolerance_s = "five minutes" }\n', "options.tolerance_s"),
    "unknown-option": ("options = { tolerence_s = 300 }\n", "options.tolerence_s"),
    "forward-url": ('[sources.pay.forward]\nurl = "not a url"\n', "forward.url"),
    "forward-timeout": (
        '[sources.pay.forward]\nurl = "https://down.example/hook"\ntimeout_s = -5\n',
        "forward.timeout_s",
    ),
}
COMMANDS = {
    "web": ("web", "--port", "0"),
    "worker": ("worker",),
    "beat": ("beat",),
    "dev": ("dev", "--port", "0"),
    "send": ("send", "pay", "--sample"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", sorted(BAD_SOURCES))
def test_bad_source_stops_every_command_before_it_starts(tmp_path: Path, case: str, command: str) -> None:
    """A bad option or forward block: exit 2, one line naming file, source and field, nothing started
    (no output, no data directory: no database, no beat schedule, no demo secrets)."""
    extra, field = BAD_SOURCES[case]
    (tmp_path / "hookyard.toml").write_text(
        f'[sources.pay]\nconnector = "stripe"\nsecrets = ["whsec_test"]\n{extra}'
    )
    result = run(*COMMANDS[command], cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"configuration error: hookyard.toml: sources.pay.{field}: "), line
    assert result.stdout == ""
    assert not (tmp_path / ".hookyard").exists()
