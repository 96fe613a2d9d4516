"""Shared fixtures. Services a test needs skip it locally when absent, and fail it in CI."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.process import RunningFake, start_fake

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get("HOOKYARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("HOOKYARD_TEST_REDIS", "redis://127.0.0.1:6379")
RABBIT_URL = os.environ.get("HOOKYARD_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672")


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
