"""Shared fixtures. Services a test needs skip it locally when absent, and fail it in CI."""

from __future__ import annotations

import os

import pytest

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
