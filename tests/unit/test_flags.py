"""Runtime flags: /v1/flags (scopes, unknown names, audit) and `hookyard flags list|set`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, select
from starlette.applications import Starlette
from starlette.routing import Mount

from events import runtime_flags
from events.db import audit_log
from events.sources import Source
from ops.api import create_api
from tests.unit.rules_kit import ENV, rule_text, write
from tests.unit.test_api import Client, token

SOURCES = 'rules_dir = "rules"\n\n[sources.shop]\nconnector = "shopify"\nsecrets = ["${SHOP_SECRET}"]\n'


def api(engine: Engine) -> Client:
    sources = {"shop": Source("shop", "shopify", ())}
    app = create_api(engine, sources, rule_names=lambda: ["big-orders"])
    return Client(Starlette(routes=[Mount("/v1", app=app)]))


def test_put_sets_and_clears_a_flag_and_audits_it(engine: Engine) -> None:
    """A write token turns a rule off, then clears it; GET lists what is set; both writes are audited."""
    client = api(engine)
    writer = token(engine, "write")
    resp = client.request(
        "PUT", "/v1/flags", json={"kind": "rule", "name": "big-orders", "enabled": False}, headers=writer
    )
    assert resp.status_code == 200 and resp.json() == {"kind": "rule", "name": "big-orders", "enabled": False}
    listed = client.get("/v1/flags", headers=token(engine, "read")).json()["flags"]
    assert [(f["kind"], f["name"], f["enabled"], f["updated_by"]) for f in listed] == [
        ("rule", "big-orders", False, "api:write-bot")
    ]
    client.request(
        "PUT", "/v1/flags", json={"kind": "rule", "name": "big-orders", "enabled": None}, headers=writer
    )
    with engine.connect() as conn:
        assert runtime_flags.read(conn) == runtime_flags.Flags()
        audited = [(r.action, r.target, r.details) for r in conn.execute(select(audit_log))]
    assert audited == [
        ("flags.set", "rule:big-orders", {"enabled": False}),
        ("flags.set", "rule:big-orders", {"enabled": None}),
    ]


def test_put_refuses_read_tokens_unknown_names_and_kinds(engine: Engine) -> None:
    """403 for a read token, 404 for a rule or source that does not exist, 422 for another kind."""
    client = api(engine)
    body = {"kind": "source", "name": "shop", "enabled": False}
    assert client.request("PUT", "/v1/flags", json=body, headers=token(engine, "read")).status_code == 403
    writer = token(engine, "write")
    missing = client.request("PUT", "/v1/flags", json={**body, "name": "shp"}, headers=writer)
    assert (missing.status_code, missing.json()["error"]) == (404, "unknown_source")
    rule = client.request(
        "PUT", "/v1/flags", json={"kind": "rule", "name": "nope", "enabled": True}, headers=writer
    )
    assert (rule.status_code, rule.json()["error"]) == (404, "unknown_rule")
    kind = client.request("PUT", "/v1/flags", json={**body, "kind": "vendor"}, headers=writer)
    assert kind.status_code == 422
    with engine.connect() as conn:
        assert runtime_flags.listing(conn) == []


def hookyard(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "COLUMNS": "100", "SHOP_SECRET": "s3cret", **ENV},
    )


def test_cli_sets_lists_and_refuses_unknown_names(tmp_path: Path) -> None:
    """`flags set rule big-orders off` is listed with who set it; an unknown rule or state exits 2."""
    (tmp_path / "hookyard.toml").write_text(SOURCES)
    write(tmp_path / "rules", "big-orders.toml", rule_text("big-orders"))
    assert hookyard(tmp_path, "migrate").returncode == 0
    done = hookyard(tmp_path, "flags", "set", "rule", "big-orders", "off", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"kind": "rule", "name": "big-orders", "enabled": False}
    listed = json.loads(hookyard(tmp_path, "flags", "list", "--json").stdout)
    assert [(f["kind"], f["name"], f["enabled"]) for f in listed] == [("rule", "big-orders", False)]
    assert listed[0]["updated_by"].startswith("cli:")
    assert "big-orders" in hookyard(tmp_path, "flags", "list").stdout
    unknown = hookyard(tmp_path, "flags", "set", "rule", "big-ordrs", "off")
    assert unknown.returncode == 2 and "no rule 'big-ordrs'; rules: big-orders" in unknown.stderr
    assert hookyard(tmp_path, "flags", "set", "source", "shop", "maybe").returncode == 2
    assert hookyard(tmp_path, "flags", "set", "source", "shop", "off").returncode == 0
