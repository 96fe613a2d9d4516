"""The stack under test: a fresh PostgreSQL database, Redis indexes 10–12, a sources file, and the
commands that start Hookyard's ingress and worker, the baseline, the bare app and the no-op worker.

Everything is removed on `close()`: the database is dropped and the Redis indexes flushed.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
from sqlalchemy import Engine, create_engine, func, select, text

from bench.procs import Proc, Sampler, free_port, spawn, wait_for
from events.db import events, make_engine, records
from events.migrate import upgrade

PG_ADMIN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
HOOKYARD_DB, BASELINE_DB, NOOP_DB = 10, 11, 12  # Redis indexes; the test suite uses 1–9
PY = sys.executable
UVICORN = [
    PY,
    "-m",
    "uvicorn",
    "--log-level",
    "warning",
    "--no-access-log",
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--host",
    "127.0.0.1",
]


@dataclass
class Stack:
    root: Path  # config, secrets and process logs
    sampler: Sampler
    secret: str = field(default_factory=lambda: secrets.token_hex(24))
    db_name: str = field(default_factory=lambda: f"bench_{uuid.uuid4().hex[:10]}")
    procs: list[Proc] = field(default_factory=list)
    _engine: Engine | None = None
    _admin: Engine | None = None

    # --- setup and teardown -------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        return PG_ADMIN.rsplit("/", 1)[0] + f"/{self.db_name}"

    def redis_url(self, index: int) -> str:
        return f"{REDIS}/{index}"

    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "hookyard.toml").write_text(
            '[sources.shop]\nconnector = "shopify"\nsecrets = ["${BENCH_SHOPIFY_SECRET}"]\n'
        )
        (self.root / "secrets.env").write_text(f"BENCH_SHOPIFY_SECRET={self.secret}\n")
        self._admin = create_engine(
            PG_ADMIN.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
        )
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.db_name}"'))
        upgrade(self.database_url)
        self.flush_redis()

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()
        if self._engine is not None:
            self._engine.dispose()
        if self._admin is not None:
            with self._admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
            self._admin.dispose()
        with contextlib.suppress(redis.RedisError):
            self.flush_redis()

    def flush_redis(self) -> None:
        for index in (HOOKYARD_DB, BASELINE_DB, NOOP_DB):
            client = redis.Redis.from_url(self.redis_url(index))
            client.flushdb()
            client.close()

    def reset_data(self) -> None:
        """Empty the inbox, the records and the brokers between phases."""
        with self.engine.begin() as conn:
            conn.execute(text("TRUNCATE events, records"))
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE events"))
        self.flush_redis()

    # --- processes ----------------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKYARD_", "BENCH_"))}
        env.update(
            {
                "HOOKYARD_CONFIG": str(self.root / "hookyard.toml"),
                "HOOKYARD_SECRETS_FILE": str(self.root / "secrets.env"),
                "HOOKYARD_DATABASE_URL": self.database_url,
                "HOOKYARD_BROKER_URL": self.redis_url(HOOKYARD_DB),
                "HOOKYARD_LOG_FORMAT": "json",
                "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
                **extra,
            }
        )
        return {k: v for k, v in env.items() if v != ""}  # an empty value: leave the default

    def spawn(self, role: str, argv: list[str], cwd: Path | None = None, **env: str) -> Proc:
        proc = spawn(role, argv, self.env(**env), cwd or self.root, self.root)
        self.procs.append(proc)
        self.sampler.watch(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        self.sampler.unwatch(proc)
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def _serve(self, role: str, argv: list[str], cwd: Path | None = None, **env: str) -> tuple[Proc, int]:
        port = free_port()
        proc = self.spawn(role, [*argv, "--port", str(port)], cwd, **env)
        wait_for(
            lambda: (
                proc.popen.poll() is None
                and httpx.post(f"http://127.0.0.1:{port}/webhooks/_probe", timeout=1).status_code > 0
            ),
            timeout=30,
            what=f"{role} on port {port} (log {proc.log})",
        )
        return proc, port

    def start_hookyard_web(self, workers: int = 1, **env: str) -> tuple[Proc, int]:
        role = "hookyard-ingress" if workers == 1 else f"hookyard-ingress-x{workers}"
        return self._serve(role, [PY, "-m", "ops.cli", "web", "--workers", str(workers)], **env)

    def start_dev(self, home: Path, **env: str) -> tuple[Proc, int]:
        """`hookyard dev` in `home` on its embedded defaults: the database and the broker are files
        under `home/.hookyard`, the log format is the one dev picks (only the sources come from us)."""
        defaults = {"HOOKYARD_DATABASE_URL": "", "HOOKYARD_BROKER_URL": "", "HOOKYARD_LOG_FORMAT": ""}
        return self._serve("hookyard-dev", [PY, "-m", "ops.cli", "dev"], home, **{**defaults, **env})

    def start_baseline(self) -> tuple[Proc, int]:
        return self._serve(
            "baseline-ingress",
            [*UVICORN, "bench.baseline_app:app"],
            BENCH_BASELINE_BROKER=self.redis_url(BASELINE_DB),
            BENCH_BASELINE_SECRET=self.secret,
        )

    def start_bare(self) -> tuple[Proc, int]:
        return self._serve("bare-asgi", [*UVICORN, "bench.bare_app:app"])

    def start_hookyard_worker(self, concurrency: int, **env: str) -> Proc:
        proc = self.spawn(
            "hookyard-worker",
            [
                PY,
                "-m",
                "ops.cli",
                "worker",
                "--concurrency",
                str(concurrency),
                "--queues",
                "hookyard.shopify",
            ],
            **env,
        )
        return proc

    def start_noop_worker(self, concurrency: int) -> Proc:
        return self.spawn(
            "noop-worker",
            [
                PY,
                "-m",
                "celery",
                "-A",
                "bench.noop_app",
                "worker",
                "--loglevel",
                "INFO",
                "--pool",
                "prefork",
                "--concurrency",
                str(concurrency),
                "-Q",
                "bench.noop",
                "--without-gossip",
                "--without-mingle",
            ],
            BENCH_NOOP_BROKER=self.redis_url(NOOP_DB),
        )

    # --- database -----------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.database_url)
        return self._engine

    def states(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return dict(conn.execute(select(events.c.state, func.count()).group_by(events.c.state)).all())

    def count_events(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar_one())

    def count_done(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(events).where(events.c.state == "done")
                ).scalar_one()
            )

    def record_versions(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    records.c.kind, func.count(), func.sum(records.c.version), func.max(records.c.version)
                ).group_by(records.c.kind)
            ).all()
        return {kind: {"records": n, "version_sum": int(s), "max_version": int(m)} for kind, n, s, m in rows}

    def e2e_latency(self) -> dict[str, Any]:
        """Percentiles of processed_at − received_at over every stored event, in the database.

        An event not processed yet counts with its age so far (a lower bound of its latency), so a
        backlog raises the percentiles instead of vanishing from them."""
        sql = text("""
            SELECT count(*), count(*) FILTER (WHERE NOT done),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY ms),
                   percentile_cont(0.999) WITHIN GROUP (ORDER BY ms),
                   max(ms)
            FROM (SELECT state = 'done' AS done,
                         extract(epoch FROM coalesce(processed_at, now()) - received_at) * 1000 AS ms
                  FROM events) t""")
        with self.engine.connect() as conn:
            n, unfinished, p50, p99, p999, mx = conn.execute(sql).one()
        return {
            "events": n,
            "unfinished": unfinished,
            "p50_ms": _r(p50),
            "p99_ms": _r(p99),
            "p999_ms": _r(p999),
            "max_ms": _r(mx),
        }

    def queue_length(self, index: int, queue: str) -> int:
        client = redis.Redis.from_url(self.redis_url(index))
        try:
            return int(client.llen(queue))
        finally:
            client.close()

    def queued_events(self, index: int, queue: str) -> int:
        """Event ids waiting in a Hookyard queue (a message carries a list of them)."""
        client = redis.Redis.from_url(self.redis_url(index))
        try:
            return sum(
                len(orjson.loads(base64.b64decode(orjson.loads(raw)["body"]))[0][0])
                for raw in client.lrange(queue, 0, -1)
            )
        finally:
            client.close()


def _r(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


def dumps(data: Any) -> str:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
