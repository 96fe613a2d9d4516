"""`hookyard rules check|list`: exit codes, one-line errors, JSON, and names never cut."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.unit.rules_kit import ENV, rule_text, write

LONG = "an-order-rule-whose-name-is-as-long-as-a-rule-name-may-be-63-ch"
SOURCES = 'rules_dir = "rules"\n\n[sources.shop]\nconnector = "shopify"\nsecrets = ["${SHOP_SECRET}"]\n'


def hookyard(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", "rules", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "COLUMNS": "80", "SHOP_SECRET": "s3cret", **ENV},
    )


def project(tmp_path: Path, *names: str) -> Path:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "hookyard.toml").write_text(SOURCES)
    for name in names:
        write(tmp_path / "rules", f"{name}.toml", rule_text(name, types='["order.created", "refund.*"]'))
    return tmp_path


def test_check_prints_the_rules_and_the_index(tmp_path: Path) -> None:
    """A valid folder exits 0 and shows each rule and the types it is indexed under."""
    result = hookyard("check", cwd=project(tmp_path, "big-orders", "vip"))
    assert result.returncode == 0, result.stderr
    assert "2 rules OK in rules" in result.stdout
    assert "order.created → big-orders, vip" in result.stdout
    assert "refund.* (glob) → big-orders" in result.stdout


def test_check_exits_2_with_the_one_line(tmp_path: Path) -> None:
    """A broken rule stops `rules check` with exit 2 and exactly one line on stderr."""
    cwd = project(tmp_path, "big-orders")
    write(cwd / "rules", "big-orders.toml", rule_text().replace('op = "gt"', 'op = "gte "'))
    result = hookyard("check", cwd=cwd)
    assert result.returncode == 2
    assert result.stderr.startswith(
        "configuration error: rules/big-orders.toml: rule big-orders: when.all[0].op: unknown operator 'gte '"
    )
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_rule_naming_an_unconfigured_source_exits_2(tmp_path: Path) -> None:
    """Rules are checked against the sources file they sit beside."""
    cwd = project(tmp_path)
    write(cwd / "rules", "x.toml", rule_text("x").replace("[when]\n", '[when]\nsources = ["shp"]\n'))
    result = hookyard("list", cwd=cwd)
    assert result.returncode == 2
    assert "rules/x.toml: rule x: when.sources: unknown source 'shp'; configured: shop" in result.stderr


def test_list_json(tmp_path: Path) -> None:
    """--json gives name, mode, enabled, types, actions and file for each rule."""
    result = hookyard("list", "--json", cwd=project(tmp_path, "big-orders"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {
            "name": "big-orders",
            "mode": "live",
            "enabled": True,
            "types": ["order.created", "refund.*"],
            "actions": ["event.tag", "slack.post"],
            "file": "rules/big-orders.toml",
        }
    ]


def test_names_are_never_cut_at_80_columns(tmp_path: Path) -> None:
    """A 63-character name appears whole on one line, in `list` and in `check`."""
    cwd = project(tmp_path, LONG, "big-orders")
    for command in ("list", "check"):
        result = hookyard(command, cwd=cwd)
        assert result.returncode == 0, result.stderr
        assert any(LONG in line for line in result.stdout.splitlines()), result.stdout
    short = hookyard("list", cwd=project(tmp_path / "short", "big-orders"))
    assert "big-orders  live  yes" in short.stdout  # a table when there is room for one


def test_no_rules_dir_means_no_rules(tmp_path: Path) -> None:
    """A sources file without rules_dir has no rules: check says so and exits 0."""
    (tmp_path / "hookyard.toml").write_text(SOURCES.replace('rules_dir = "rules"\n', ""))
    result = hookyard("check", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"folder": None, "rules": 0, "index": {"exact": {}, "globs": []}}
