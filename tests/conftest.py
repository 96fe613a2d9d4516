"""Shared fixtures. Services a test needs skip it locally when absent, and fail it in CI."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from events import log
from tests.fakes.process import RunningFake, start_fake

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get("HOOKYARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("HOOKYARD_TEST_REDIS", "redis://127.0.0.1:6379")
RABBIT_URL = os.environ.get("HOOKYARD_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672")


@pytest.fixture(autouse=True, scope="session")
def uncached_loggers() -> None:
    """In-process CLI runs and app factories configure logging again and again: no logger may keep
    the configuration of an earlier test (structlog's capture_logs relies on that)."""
    log.CACHE_LOGGERS = False


@pytest.fixture(autouse=True)
def isolated_logging() -> Iterator[None]:
    """Whatever a test configures (structlog, the root logger, warnings capture, bound context
    variables) is put back afterwards, so the next test in the same process starts clean."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quieter = {name: logging.getLogger(name).level for name in log.QUIETER}
    config = structlog.get_config()
    config["processors"] = list(config["processors"])  # capture_logs edits the live list in place
    yield
    structlog.configure(**config)
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in quieter.items():
        logging.getLogger(name).setLevel(old)
    logging.captureWarnings(False)


def need(service: str, error: Exception) -> None:
    """Skip locally, fail in CI: CI must never pass by skipping what it is meant to test."""
    message = f"{service} is not reachable: {error!r}"
    if CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def worker_id_num(request: pytest.FixtureRequest) -> int:
    """0 for the main process, n for xdist's gw<n>."""
    wid = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(wid.removeprefix("gw") or 0)


@pytest.fixture
def fake_vendor(tmp_path: Path) -> Iterator[Callable[..., RunningFake]]:
    """Start fake vendor APIs as uvicorn processes: `fake_vendor("stripe", {config})`; stopped at the end."""
    started: list[RunningFake] = []

    def start(vendor: str, config: dict[str, Any] | None = None) -> RunningFake:
        started.append(start_fake(vendor, config, log_dir=tmp_path))
        return started[-1]

    yield start
    for running in started:
        running.stop()
