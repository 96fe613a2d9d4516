"""The README's first command and walk-through, as written: `hookyard dev`, `send`, `events list`."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.harness import free_port, start_dev, wait_for

pytestmark = pytest.mark.integration


def fresh_shell() -> dict[str, str]:
    """A new shell's environment: no HOOKYARD_ variables, and no virtualenv on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_")}
    return {**env, "PATH": "/usr/local/bin:/usr/bin:/bin"}


def hookyard(
    cwd: Path, *args: str, program: tuple[str, ...] = (sys.executable, "-m", "ops.cli"), **extra: str
) -> Any:
    """Run a hookyard command in cwd with --json (from a new shell, plus `extra` environment)."""
    env = fresh_shell() | extra
    result = subprocess.run(
        [*program, *args, "--json"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)


def test_dev_mode_walkthrough_on_a_fresh_directory(tmp_path: Path, fake_vendor: Any) -> None:
    """From an empty directory: dev writes a demo config and secrets and says "up" once the port
    answers, with a command that works from a new shell; a second dev on the port starts nothing;
    a delivery sent twice is one event; sends are processed, a broken payment is dead-lettered, fixed
    with dlq edit, replayed and processed once; the demo helpdesk is connected to the fake OAuth
    provider; SIGTERM stops it all."""
    port = free_port()
    provider = fake_vendor("oauth")
    oauth = {"DEMO_OAUTH_URL": provider.url, "HOOKYARD_OAUTH__PUBLIC_URL": f"http://127.0.0.1:{port}"}
    env = fresh_shell() | oauth
    cli = functools.partial(hookyard, tmp_path, **oauth)
    dev = start_dev(tmp_path, port, env)
    try:
        wait_for(
            lambda: b"Hookyard is up" in (tmp_path / "dev.log").read_bytes(),
            timeout=60,
            what="hookyard dev to say it is up",
        )
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200  # "up" came after the bind
        assert (tmp_path / "hookyard.toml").exists() and (tmp_path / ".hookyard" / "secrets.env").exists()
        second = subprocess.run(
            [sys.executable, "-m", "ops.cli", "dev", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2 and f"port {port}" in second.stderr, second.stderr
        assert "Hookyard is up" not in second.stdout
        [suggested] = re.findall(r"Try: (\S+) send shop", (tmp_path / "dev.log").read_text())
        twice = cli("send", "shop", "--repeat", "2", "--url", url, program=(suggested,))
        assert [(r["response"]["accepted"], r["response"]["duplicates"]) for r in twice] == [(1, 0), (0, 1)]
        listed = cli("sources", "list")
        assert {(s["name"], s["needs_reauth"]) for s in listed} == {
            ("shop", False),
            ("payments", False),
            ("github", False),
            ("svix", False),
            ("helpdesk", False),
        }
        sent = cli("send", "shop", "--sample", "--url", url, "--count", "2")
        assert [r["status"] for r in sent] == [200, 200]
        wait_for(
            lambda: [e["state"] for e in cli("events", "list")] == ["done"] * 3,
            timeout=60,
            what="the three events done",
        )
        [broken] = cli("send", "payments", "--sample", "--url", url, "--set", "data.object.currency=dollars")
        event_id = broken["response"]["ids"][0]
        wait_for(
            lambda: [d["event_id"] for d in cli("dlq", "list")] == [event_id],
            timeout=60,
            what="the broken payment dead-lettered",
        )
        cli("dlq", "edit", event_id, "--set", "data.object.currency=usd")
        assert cli("dlq", "replay", event_id) == {"replayed": 1, "skipped": 0}
        states = lambda: {e["id"]: e["state"] for e in cli("events", "list")}  # noqa: E731
        wait_for(lambda: states()[event_id] == "done", timeout=60, what="the fixed payment processed")
        started = cli("connections", "connect", "helpdesk")
        assert httpx.get(started["url"], follow_redirects=True, timeout=30).json()["status"] == "connected"
        listed = cli("connections", "list")
        assert [(c["source"], c["status"]) for c in listed] == [("helpdesk", "connected")]
        dev.popen.terminate()  # SIGTERM to `hookyard dev` alone: it must stop its web and worker itself
        assert dev.popen.wait(timeout=60) == 0
        wait_for(lambda: not group_alive(dev.popen.pid), timeout=30, what="web and worker to exit")
    finally:
        dev.stop()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
