"""Injected misbehaviour (faults) and deferred mutations, both matched by a path glob."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

FAULT_KINDS = ("error", "delay", "malformed", "repeat_page", "unauthorized")


@dataclass
class Fault:
    """An injected misbehaviour on requests whose path matches `path` (a glob)."""

    kind: str
    path: str = "*"
    method: str | None = None
    count: int | None = 1  # how many requests it hits; None: until reset
    after: int = 0  # let this many matching requests through first
    status: int = 500  # kind "error"
    code: str = ""  # kind "error": the vendor's error code to answer with
    delay_s: float = 1.0  # kind "delay"
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")

    def hits(self, request: Request) -> bool:
        if not fnmatch.fnmatchcase(request.url.path, self.path):
            return False
        if self.method is not None and self.method.upper() != request.method:
            return False
        self.seen += 1
        if self.seen <= self.after:
            return False
        self.fired += 1
        return True

    @property
    def spent(self) -> bool:
        return self.count is not None and self.fired >= self.count


@dataclass
class Pending:
    """A mutation that waits for a request: applied just before the (after+1)-th matching one."""

    spec: dict[str, Any]
    path: str
    after: int = 0
    seen: int = 0
