"""Everyday mistakes get one readable line and exit code 2, and leave nothing behind; help is complete."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from ops.cli import command
from ops.cli_support import hookyard_command

PROJECT = '[sources.shop]\nconnector = "shopify"\nsecrets = ["s3cret"]\n'


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), **env},
    )


def files(root: Path) -> set[Path]:
    return {path.relative_to(root) for path in root.rglob("*")}


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Exit code 2 and exactly one line on stderr, no traceback; that line."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    return line


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from walk(sub, (*path, name))


def test_every_command_and_parameter_has_help_and_no_flag_shows_a_type(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Walk every command that exists: it has a help text, so does each argument and option, each
    takes --config after it, and its rendered --help shows no <bool> placeholder."""
    monkeypatch.setenv("COLUMNS", "200")
    commands = list(walk(command()))
    assert len(commands) > 20
    for path, cmd in commands:
        where = " ".join(path) or "hookyard"
        assert cmd.help, where
        for param in cmd.params:
            assert getattr(param, "help", None), f"{where}: {param.name} has no help"
        assert any("--config" in param.opts for param in cmd.params), where
        assert command()([*path, "--help"], prog_name="hookyard", standalone_mode=False) == 0
        shown = capsys.readouterr().out
        assert "Usage: hookyard" in shown, where
        assert "<bool>" not in shown, f"{where}:\n{shown}"


def test_dlq_purge_help_says_a_selector_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    """`dlq purge --help` says what it needs before it deletes anything."""
    command()(["dlq", "purge", "--help"], prog_name="hookyard", standalone_mode=False)
    assert "A selector is required" in " ".join(capsys.readouterr().out.split())


BAD_URLS = {
    "unreachable": "postgresql://hookyard:pw-9f2c@127.0.0.1:1/hookyard",
    "unknown kind": "mysqlx://hookyard@127.0.0.1/hookyard",
    "not a URL": "not a url at all",
}
DB_COMMANDS = {
    "migrate": ("migrate",),
    "events list": ("events", "list"),
    "dlq list": ("dlq", "list"),
    "tokens list": ("tokens", "list"),
    "dev": ("dev", "--port", "{port}"),
}


BAD_URL_CASES = [("unreachable", name) for name in sorted(DB_COMMANDS)] + [
    (url, name) for url in ("unknown kind", "not a URL") for name in ("events list", "dev")
]


@pytest.mark.parametrize(("url", "name"), BAD_URL_CASES)
def test_bad_database_url_is_one_line_exit_2_and_creates_nothing(tmp_path: Path, url: str, name: str) -> None:
    """A wrong or unreachable HOOKYARD_DATABASE_URL: one line naming it and the fix, exit 2, no
    password shown, and not a file created (no demo config, no .hookyard)."""
    args = [arg.format(port=free_port()) for arg in DB_COMMANDS[name]]
    line = one_error_line(run(*args, cwd=tmp_path, HOOKYARD_DATABASE_URL=BAD_URLS[url]))
    assert line.startswith("error: ") and "HOOKYARD_DATABASE_URL" in line, line
    assert "pw-9f2c" not in line
    assert files(tmp_path) == set()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"HOOKYARD_BROKER_URL": "redis://127.0.0.1:9/0", "HOOKYARD_RABBITMQ__QUORUM_QUEUES": "true"},
            "configuration error: HOOKYARD_RABBITMQ__QUORUM_QUEUES=true needs a RabbitMQ broker",
        ),
        (
            {"HOOKYARD_RABBITMQ__DELIVERY_LIMIT": "0"},
            "configuration error: HOOKYARD_RABBITMQ__DELIVERY_LIMIT: Input should be greater than or equal",
        ),
    ],
)
def test_a_setting_that_cannot_work_stops_every_process_with_its_name(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    """A settings mistake is one line naming the variable, exit 2, for web, worker and beat alike."""
    (tmp_path / "hookyard.toml").write_text(PROJECT)
    for args in (("web", "--port", str(free_port())), ("worker",), ("beat",)):
        assert one_error_line(run(*args, cwd=tmp_path, **env)).startswith(expected)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("--group", "vendors"),
            "error: --group 'vendors': name one or more of events, actions, maintenance, sync",
        ),
        (("--group", "events", "--queues", "hookyard.sync"), "error: --queues and --group: give one of them"),
        (
            ("--queues", "hookyard.sync,hookyard.typo"),
            "error: --queues: 'hookyard.typo' is not a Hookyard queue (hookyard.<connector>, "
            "hookyard.actions, hookyard.maintenance, hookyard.sync)",
        ),
    ],
)
def test_a_worker_told_an_unknown_queue_or_group_does_not_start(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    (tmp_path / "hookyard.toml").write_text(PROJECT)
    assert one_error_line(run("worker", *args, cwd=tmp_path)) == expected


@pytest.mark.parametrize("name", sorted(set(DB_COMMANDS) - {"dev"}) + ["sources list"])
def test_outside_a_project_directory_is_one_line_and_creates_nothing(tmp_path: Path, name: str) -> None:
    """No sources file here and no database URL given: say where to run it, exit 2, no stray
    .hookyard/hookyard.db."""
    line = one_error_line(run(*DB_COMMANDS.get(name, ("sources", "list")), cwd=tmp_path))
    assert "project's directory" in line and "--config" in line, line
    assert files(tmp_path) == set()


def test_commands_before_migrate_say_run_hookyard_migrate(tmp_path: Path) -> None:
    """In a project never migrated, reads say `run hookyard migrate` (creating nothing); on a database
    file without our schema (the stray empty one) too — and a worker refuses to start instead of
    failing every task."""
    (tmp_path / "hookyard.toml").write_text(PROJECT)
    line = one_error_line(run("events", "list", cwd=tmp_path))
    assert "run `hookyard migrate`" in line and not (tmp_path / ".hookyard").exists()
    (tmp_path / ".hookyard").mkdir()
    (tmp_path / ".hookyard" / "hookyard.db").write_bytes(b"")
    for args in (("dlq", "list"), ("worker",)):
        line = one_error_line(run(*args, cwd=tmp_path))
        assert line.endswith("has no Hookyard schema: run `hookyard migrate`"), line


def test_a_named_sources_file_that_is_missing_is_an_error_not_a_demo(tmp_path: Path) -> None:
    """`-c mistyped.toml dev`, `dev --config mistyped.toml` and HOOKYARD_CONFIG=mistyped.toml: exit 2,
    one line naming the file; no demo is written anywhere."""
    port = str(free_port())
    for args, env in (
        (("-c", "mistyped.toml", "dev", "--port", port), {}),
        (("dev", "--port", port, "--config", "mistyped.toml"), {}),
        (("dev", "--port", port), {"HOOKYARD_CONFIG": "mistyped.toml"}),
    ):
        line = one_error_line(run(*args, cwd=tmp_path, **env))
        assert line.startswith("configuration error: mistyped.toml: sources file not found"), line
        assert files(tmp_path) == set()


def test_config_after_the_command(tmp_path: Path) -> None:
    """`hookyard events list -c x.toml` and `hookyard dlq --config x.toml list` read x.toml."""
    (tmp_path / "x.toml").write_text(PROJECT)
    assert run("migrate", "-c", "x.toml", cwd=tmp_path).returncode == 0
    for args in (
        ("events", "list", "-c", "x.toml", "--json"),
        ("dlq", "--config", "x.toml", "list", "--json"),
    ):
        result = run(*args, cwd=tmp_path)
        assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


def test_dev_on_a_busy_port_starts_nothing(tmp_path: Path) -> None:
    """A second `hookyard dev` on a taken port: exit 2 with one line naming the port, no "up", no
    database created, nothing started."""
    (tmp_path / "hookyard.toml").write_text(PROJECT)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("dev", "--port", str(port), cwd=tmp_path)
    line = one_error_line(result)
    assert f"port {port}" in line and "--port" in line, line
    assert result.stdout == ""
    assert files(tmp_path) == {Path("hookyard.toml")}


def test_the_suggested_command_works_from_a_new_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hookyard` only when PATH finds this very program; else its path (relative under the working
    directory, as `.venv/bin/hookyard` under `make dev`)."""
    venv_bin = Path(sys.executable).parent
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.chdir(venv_bin.parent.parent)
    assert hookyard_command() == str(Path(venv_bin.parent.name, "bin", "hookyard"))
    monkeypatch.chdir(tmp_path)
    assert hookyard_command() == str(venv_bin / "hookyard")
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin:/bin")
    assert hookyard_command() == "hookyard"


class Recorder(BaseHTTPRequestHandler):
    """A stand-in ingress: records each request, answers 200."""

    seen: list[tuple[str, bytes, dict[str, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.seen.append((self.path, body, {k.lower(): v for k, v in self.headers.items()}))
        answer = orjson.dumps({"accepted": 1, "duplicates": 0})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def ingress() -> Iterator[str]:
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_send_posts_the_sample_by_default_and_repeat_resends_one_delivery(
    tmp_path: Path, ingress: str
) -> None:
    """`send shop` signs and posts the sample (no --sample needed, still accepted); --repeat 2 posts
    each delivery twice, byte for byte (same delivery id); --count 2 makes two distinct deliveries."""
    (tmp_path / "hookyard.toml").write_text(PROJECT)
    assert run("send", "shop", "--url", ingress, cwd=tmp_path).returncode == 0
    assert [path for path, _, _ in Recorder.seen] == ["/webhooks/shop"]
    Recorder.seen = []
    args = ("send", "shop", "--sample", "--count", "2", "--repeat", "2", "--json", "--url", ingress)
    result = run(*args, cwd=tmp_path)
    assert [r["status"] for r in orjson.loads(result.stdout)] == [200] * 4
    (body1, headers1), (body2, headers2), (body3, headers3), (body4, headers4) = [
        (body, headers) for _, body, headers in Recorder.seen
    ]
    assert (body1, headers1) == (body2, headers2) and (body3, headers3) == (body4, headers4)
    assert headers1["x-shopify-event-id"] != headers3["x-shopify-event-id"]
