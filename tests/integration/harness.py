"""Real processes for integration tests: uvicorn ingress, celery worker, beat, on real services."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine, create_engine, func, select, text

from bench.waiting import free_port, wait_for
from connectors import registry
from connectors.base import SignedRequest
from events.db import events, make_engine, records
from events.migrate import upgrade

HOOKYARD = (sys.executable, "-m", "ops.cli")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    sink: Any

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a celery worker and its pool children)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=20)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.kill(signal.SIGTERM)
        if self.popen.poll() is None:
            self.kill(signal.SIGKILL)
        self.sink.close()


def start_dev(home: Path, port: int, env: Mapping[str, str]) -> Process:
    """`hookyard dev` in `home` with exactly `env`, its output appended to home/dev.log, in a process
    group of its own (so `kill` reaches its web, worker, pool and beat)."""
    log = home / "dev.log"
    sink = log.open("ab")
    popen = subprocess.Popen(
        [*HOOKYARD, "dev", "--port", str(port)],
        cwd=home,
        env=dict(env),
        stdout=sink,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Process("dev", popen, log, sink)


@dataclass
class Stack:
    """One isolated Hookyard: its own directory, database, broker database and ports."""

    root: Path
    database_url: str
    broker_url: str
    secrets: dict[str, str]
    env_extra: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    port: int = 0
    _engine: Engine | None = None

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_")}
        env.update(
            {
                "HOOKYARD_CONFIG": str(self.root / "hookyard.toml"),
                "HOOKYARD_SECRETS_FILE": str(self.root / "secrets.env"),
                "HOOKYARD_DATABASE_URL": self.database_url,
                "HOOKYARD_BROKER_URL": self.broker_url,
                "HOOKYARD_LOG_FORMAT": "json",
                "HOOKYARD_RELAY__INTERVAL_S": "1",
                "HOOKYARD_RELAY__GRACE_S": "3",
                "HOOKYARD_WORKER__LEASE_S": "5",
                **self.env_extra,
                **overrides,
            }
        )
        return env

    def write_config(self, sources: dict[str, str], extra: dict[str, str] | None = None) -> None:
        """sources: name → connector; each gets the secret self.secrets[name] and any `extra` TOML."""
        lines, secret_lines = [], []
        for name, connector in sources.items():
            var = f"SECRET_{name.upper().replace('-', '_')}"
            lines.append(
                f'[sources.{name}]\nconnector = "{connector}"\nsecrets = ["${{{var}}}"]\n'
                + (extra or {}).get(name, "")
            )
            secret_lines.append(f"{var}={self.secrets[name]}")
        (self.root / "hookyard.toml").write_text("\n".join(lines))
        (self.root / "secrets.env").write_text("\n".join(secret_lines) + "\n")

    def spawn(self, name: str, *args: str, program: tuple[str, ...] = HOOKYARD, **env: str) -> Process:
        log = self.root / f"{name}-{len(self.processes)}.log"
        sink = log.open("wb")
        popen = subprocess.Popen(
            [*program, *args],
            cwd=self.root,
            env=self.env(**env),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Process(name, popen, log, sink)
        self.processes.append(proc)
        return proc

    def start_web(self, *, workers: int = 1, port: int | None = None, **env: str) -> Process:
        self.port = port or free_port()
        proc = self.spawn("web", "web", "--port", str(self.port), "--workers", str(workers), **env)
        # up means answering; /healthz says 503 when the database is down, and that is a test too
        wait_for(
            lambda: httpx.get(f"{self.url}/healthz", timeout=1).status_code in (200, 503),
            timeout=30,
            what=f"ingress on {self.port} (log {proc.log})",
        )
        return proc

    def start_worker(
        self,
        *extra: str,
        beat: bool = True,
        concurrency: int = 2,
        program: tuple[str, ...] = HOOKYARD,
        **env: str,
    ) -> Process:
        args = ["worker", "--concurrency", str(concurrency), *extra] + (["--beat"] if beat else [])
        proc = self.spawn("worker", *args, program=program, **env)
        wait_for(
            lambda: b"ready." in proc.log.read_bytes(),
            timeout=60,
            what=f"celery worker ready (log {proc.log})",
        )
        return proc

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sample(self, source: str, connector: str) -> SignedRequest:
        return registry.get(connector).sample(self.secrets[source], time.time())

    def post(self, source: str, req: SignedRequest, **kw: Any) -> httpx.Response:
        return httpx.post(
            f"{self.url}/webhooks/{source}", content=req.body, headers=req.headers, timeout=30, **kw
        )

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.database_url)
        return self._engine

    def states(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(events.c.state, func.count()).group_by(events.c.state))
            return {state: n for state, n in rows}

    def wait_all_done(self, n: int, timeout: float = 60) -> None:
        wait_for(
            lambda: self.states().get("done", 0) >= n,
            timeout=timeout,
            what=f"{n} events done (states now {self.states()})",
        )

    def record_versions(self) -> list[int]:
        with self.engine.connect() as conn:
            return [v for (v,) in conn.execute(select(records.c.version))]

    def cli(self, *args: str) -> Any:
        """Run `hookyard … --json` against this stack; the parsed output."""
        result = subprocess.run(
            [*HOOKYARD, *args, "--json"],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return orjson.loads(result.stdout)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.log.name}\n{p.log.read_text(errors='replace')[-12000:]}" for p in self.processes
        )

    def close(self) -> None:
        for proc in self.processes:
            proc.stop()
        if self._engine is not None:
            self._engine.dispose()


@contextlib.contextmanager
def postgres_database(admin_url: str, *, migrate: bool = True) -> Iterator[str]:
    """A fresh database for one test (at the latest schema unless `migrate=False`), dropped afterwards."""
    name = f"hookyard_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        if migrate:
            upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
