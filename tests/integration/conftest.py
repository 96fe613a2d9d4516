"""Integration fixtures: a real stack per test on PostgreSQL + Redis, or on SQLite + embedded broker."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text

from events.migrate import upgrade
from tests.conftest import PG_ADMIN_URL, RABBIT_URL, REDIS_URL, need
from tests.integration.harness import Stack, postgres_database

SOURCES = {"shop": "shopify"}


def _secrets() -> dict[str, str]:
    return {name: secrets.token_hex(16) for name in SOURCES}


@pytest.fixture
def redis_url(worker_id_num: int) -> Iterator[str]:
    url = f"{REDIS_URL}/{1 + worker_id_num % 15}"
    try:
        client = redis.Redis.from_url(url)
        client.flushdb()
    except redis.RedisError as exc:
        need("Redis", exc)
    yield url
    client.flushdb()
    client.close()


def require_postgres() -> None:
    """Skip (locally) or fail (CI) when the test PostgreSQL does not answer."""
    probe = create_engine(PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with probe.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        need("PostgreSQL", exc)
    finally:
        probe.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_postgres()
    with postgres_database(PG_ADMIN_URL) as url:
        yield url


@pytest.fixture
def pg_stack(tmp_path: Path, pg_url: str, redis_url: str, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """PostgreSQL + Redis, production-shaped."""
    stack = Stack(root=tmp_path, database_url=pg_url, broker_url=redis_url, secrets=_secrets())
    stack.write_config(SOURCES)
    yield stack
    _close(stack, request)


@pytest.fixture
def sqlite_stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The embedded default: SQLite database and the embedded SQLite broker (events.broker)."""
    stack = Stack(
        root=tmp_path,
        database_url=f"sqlite:///{tmp_path}/hookyard.db",
        broker_url=f"sqlite:///{tmp_path}/broker.db",
        secrets=_secrets(),
    )
    stack.write_config(SOURCES)
    upgrade(stack.database_url)
    yield stack
    _close(stack, request)


@pytest.fixture
def rabbit_stack(tmp_path: Path, pg_url: str, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """PostgreSQL + RabbitMQ, the other production broker (a vhost of its own per test)."""
    vhost = f"hookyard-{secrets.token_hex(4)}"
    try:
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    except (OSError, subprocess.CalledProcessError) as exc:
        need("RabbitMQ", exc)
    stack = Stack(root=tmp_path, database_url=pg_url, broker_url=f"{RABBIT_URL}/{vhost}", secrets=_secrets())
    stack.write_config(SOURCES)
    yield stack
    _close(stack, request)
    _rabbitmqctl("delete_vhost", vhost)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


BACKENDS = {
    "postgres-redis": "pg_stack",
    "sqlite-embedded": "sqlite_stack",
    "postgres-rabbitmq": "rabbit_stack",
}


@pytest.fixture(params=list(BACKENDS))
def stack(request: pytest.FixtureRequest) -> Stack:
    """Every backend: the same behaviour is promised on each."""
    return request.getfixturevalue(BACKENDS[request.param])


@pytest.fixture(params=["postgres-redis", "postgres-rabbitmq"])
def server_stack(request: pytest.FixtureRequest) -> Stack:
    """PostgreSQL with each production broker: what a worker killed or a message lost does there."""
    return request.getfixturevalue(BACKENDS[request.param])


def _close(stack: Stack, request: pytest.FixtureRequest) -> None:
    report = getattr(request.node, "rep_call", None)
    stack.close()
    if report is not None and report.failed:
        print(stack.logs())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
