"""Running fakes for tests: a real uvicorn process (`start_fake`), or in this process behind a
synchronous httpx transport (`in_process`); either way a `FakeControl` drives `/_fake/`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.waiting import free_port, wait_for
from tests.fakes import build
from tests.fakes.base import Fake

ROOT = Path(__file__).resolve().parents[2]


class FakeControl:
    """The control API of one fake: statistics, faults, mutations, reset, clock, tokens, posts."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, f"/_fake/{path}", json=body)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        """Totals (requests, throttled, violations, faults) and the same per endpoint ("GET /v1/charges")."""
        return dict(self._call("GET", "stats"))

    def endpoint(self, label: str) -> dict[str, Any]:
        """One endpoint's stats; zeros when it was never called."""
        empty = {"requests": 0, "throttled": 0, "violations": 0, "faults": 0, "statuses": {}}
        return dict(self.stats()["endpoints"].get(label, empty))

    def fault(self, kind: str, path: str = "*", **options: Any) -> list[dict[str, Any]]:
        """Inject a fault: error (status, code), delay (delay_s), malformed, repeat_page, unauthorized;
        options count (None: until reset), after, method."""
        return list(self._call("POST", "faults", {"kind": kind, "path": path, **options})["faults"])

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def mutate(self, collection: str, **spec: Any) -> list[Any]:
        """Change (id=/key=, set=, delete=, touch=, updated_at=) or add (add=N, created_at=) records;
        when={"path": glob, "after": n} defers it to just before the (n+1)-th matching request."""
        return list(self._call("POST", "mutate", {"collection": collection, **spec})["changed"])

    def reset(self) -> None:
        """Back to the seeded data, fresh limits, no faults, zero stats."""
        self._call("POST", "reset")

    def advance(self, seconds: float) -> float:
        """Move the fake's clock forward; returns its new now (unix seconds)."""
        return float(self._call("POST", "clock", {"advance_s": seconds})["now"])

    def set_tokens(self, tokens: list[str]) -> None:
        """Replace the accepted credentials (revoke one, accept a refreshed one)."""
        self._call("POST", "tokens", {"tokens": tokens})

    def objects(self, collection: str) -> list[dict[str, Any]]:
        """The fake's truth: every record (deleted too) with its public id, times and attributes."""
        return list(self._call("GET", f"objects/{collection}"))

    def posts(self) -> list[dict[str, Any]]:
        """Slack: every message it accepted, in order."""
        return list(self._call("GET", "posts"))

    def oauth(self) -> dict[str, Any]:
        """The OAuth provider: codes issued, exchanges, refreshes, reused refresh tokens, refusals."""
        return dict(self._call("GET", "oauth"))

    def expire_access(self) -> None:
        """The OAuth provider: every access token expires now."""
        self._call("POST", "oauth/expire")


class InProcessTransport(httpx.BaseTransport):
    """A synchronous httpx transport into an ASGI app (each request runs its own event loop)."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()

        async def run() -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return asyncio.run(run())


@dataclass
class InProcessFake:
    vendor: str
    fake: Fake  # the state itself, for assertions the control API does not cover
    url: str = "http://fake.test"
    transport: InProcessTransport = field(init=False)
    control: FakeControl = field(init=False)

    def __post_init__(self) -> None:
        self.transport = InProcessTransport(self.fake.app())
        self.control = FakeControl(self.client())

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client on the fake (`headers=`, `timeout=` … as for httpx.Client)."""
        return httpx.Client(transport=self.transport, base_url=self.url, **kwargs)


def in_process(vendor: str, config: dict[str, Any] | None = None) -> InProcessFake:
    return InProcessFake(vendor, build(vendor, config))


@dataclass
class RunningFake:
    vendor: str
    url: str
    popen: subprocess.Popen[bytes]
    log: Path
    control: FakeControl
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client on the fake, closed by stop()."""
        self.clients.append(httpx.Client(base_url=self.url, **kwargs))
        return self.clients[-1]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.popen.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)
        for client in [*self.clients, self.control.http]:
            client.close()


def start_fake(vendor: str, config: dict[str, Any] | None = None, log_dir: Path | None = None) -> RunningFake:
    """Start `python -m tests.fakes VENDOR` as a uvicorn process on a free port; return once it answers."""
    port = free_port()
    log = Path(log_dir or tempfile.mkdtemp(prefix="fake-")) / f"{vendor}-{port}.log"
    argv = [
        sys.executable,
        "-m",
        "tests.fakes",
        vendor,
        "--port",
        str(port),
        "--config",
        json.dumps(config or {}),
    ]
    with log.open("wb") as sink:
        popen = subprocess.Popen(
            argv, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    running = RunningFake(vendor, url, popen, log, FakeControl(httpx.Client(base_url=url, timeout=10)))
    try:
        wait_for(
            lambda: popen.poll() is not None or running.control.stats(), timeout=20, what=f"fake {vendor}"
        )
    except TimeoutError:
        running.stop()
        raise
    if popen.poll() is not None:
        raise RuntimeError(f"fake {vendor} exited with {popen.returncode}: {log.read_text()[-2000:]}")
    return running
