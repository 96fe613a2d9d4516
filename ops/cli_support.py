"""What every `hookyard` command shares: the one-line refusal, `--config` after any subcommand,
help without type placeholders on flags, the command to suggest to a person, and `dev`'s checks."""

from __future__ import annotations

import copy
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.console import Console

from schemas.errors import HookyardError

CONFIG_PARAM = "config"

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def print_json(data: Any) -> None:
    """`--json` output: one JSON document on stdout, nothing else there."""
    sys.stdout.write(orjson.dumps(data).decode() + "\n")


class CannotRun(HookyardError):
    """This command cannot do its work here (the database, the directory, a busy port); the message
    names the cause and the fix. `ops.cli.main` prints it as one line and exits with code 2."""


def finish_commands(root: Any, use_config: Callable[[Path], None]) -> Any:
    """Walk the built command tree (whatever commands exist, ours or added later): every command and
    group also takes the root's `--config/-c` (as people type it: `hookyard dev --config x.toml`), and
    flags show no value placeholder (`<bool>`) in their help. Returns `root`."""
    template = next(p for p in root.params if p.name == CONFIG_PARAM)
    _finish(root, template, use_config)
    return root


def _finish(command: Any, template: Any, use_config: Callable[[Path], None]) -> None:
    ctx = command.context_class(command, **command.context_settings)
    help_option = command.get_help_option(ctx)
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _add_config(sub, template, use_config)
        _finish(sub, template, use_config)


def _add_config(command: Any, template: Any, use_config: Callable[[Path], None]) -> None:
    taken = {name for p in command.params for name in (*p.opts, *p.secondary_opts)}
    if "--config" in taken:
        return

    def given(ctx: Any, param: Any, value: Path | None) -> None:
        if value is not None:
            use_config(Path(value))

    option = copy.copy(template)
    option.opts = [name for name in template.opts if name not in taken]
    option.expose_value = False
    option.envvar = None  # the root option reads HOOKYARD_CONFIG already
    option.is_eager = True  # before the command's other options are checked
    option.callback = given
    command.params.append(option)


def hookyard_command() -> str:
    """How a person runs this program from their shell: `hookyard` when PATH finds this very one,
    else its path, relative when under the working directory (`.venv/bin/hookyard` under `make dev`)."""
    here = Path(sys.executable).parent / "hookyard"
    if not here.exists():
        return f"{sys.executable} -m ops.cli"
    found = shutil.which("hookyard")
    if found is not None and Path(found).resolve() == here.resolve():
        return "hookyard"
    try:
        return str(here.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(here)


def check_port(host: str, port: int) -> None:
    """Refuse a port that is taken (a second `hookyard dev`) before anything starts."""
    if not 0 < port < 65536:
        raise CannotRun(f"--port {port}: give a port from 1 to 65535")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is free
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise CannotRun(
                f"port {port} on {host} is in use ({exc.strerror}), perhaps by another `hookyard dev`: "
                "stop it, or pass --port N"
            ) from None


def wait_until_up(
    host: str, port: int, children: Mapping[str, subprocess.Popen[bytes]], timeout_s: float, err: Console
) -> bool:
    """`dev`: poll /healthz until the ingress answers (True), or a child exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while all(child.poll() is None for child in children.values()) and time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{host}:{port}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    err.print(f"[red]hookyard dev: the ingress did not come up on port {port}; stopping[/]")
    return False


def wait_for_an_end(children: Mapping[str, subprocess.Popen[bytes]], err: Console) -> str:
    """`dev`: block until one child exits by itself; say which, and return its name."""
    while True:
        for name, child in children.items():
            if child.poll() is not None:
                err.print(f"[red]hookyard dev: {name} exited (code {child.returncode}); stopping[/]")
                return name
        time.sleep(0.5)
