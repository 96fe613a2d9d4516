"""A downstream receiver for forwarded events that behaves like a real API: it honours
Idempotency-Key, and fails on command (503, 429 + Retry-After, 400) so retries can be watched."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

# (idempotency key, attempt number for that key, parsed body) → (status, headers)
Rule = Callable[[str, int, Any], tuple[int, dict[str, str]]]


def healthy(key: str, attempt: int, body: Any) -> tuple[int, dict[str, str]]:
    return 200, {}


@dataclass
class Downstream:
    rule: Rule = healthy
    requests: Counter[str] = field(default_factory=Counter)
    applied: Counter[str] = field(default_factory=Counter)  # effects: 2xx answers per key
    log: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def handle(self, key: str, body: Any) -> tuple[int, dict[str, str]]:
        with self.lock:
            self.requests[key] += 1
            if self.applied[key]:
                return 200, {"Idempotent-Replayed": "true"}  # a real API answers the stored result
            status, headers = self.rule(key, self.requests[key], body)
            self.log[key].append(status)
            if 200 <= status < 300:
                self.applied[key] += 1
            return status, headers


@contextmanager
def running(downstream: Downstream) -> Iterator[Downstream]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
            body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, headers = downstream.handle(self.headers.get("Idempotency-Key", ""), body)
            payload = b'{"ok": true}' if status < 300 else b'{"error": "try later"}'
            self.send_response(status)
            for name, value in {
                **headers,
                "Content-Type": "application/json",
                "Content-Length": str(len(payload)),
            }.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    downstream.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield downstream
    finally:
        server.shutdown()
        server.server_close()
