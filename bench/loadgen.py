"""An asyncio HTTP/1.1 load generator: keep-alive connections, pre-built distinct requests.

Runs in its own process (`python -m bench.loadgen '<json spec>'`, prints a JSON result) so that it
does not share a GIL with the orchestrator. Requests are generated before the clock starts.

Modes (saturation, a closed loop, is wrk's job: bench/wrk.py)
  open    requests are *scheduled* at a fixed rate (i / rate) whatever the server does; a free
          connection sends each at its time. Latency = answer − scheduled time, so a server that
          falls behind is charged for the queueing it causes (no coordinated omission).
  storm   each delivery is sent `copies` times at once, on `copies` different connections.

The protocol parser is minimal on purpose: status line, Content-Length, body. Anything it cannot
read is counted as an error, never silently retried.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.payloads import signed_request


class ProtocolError(Exception):
    pass


class Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is not None:
            self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    def _parse(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self.waiter.set_exception(ProtocolError("response without content-length"))  # type: ignore[union-attr]
            self.waiter = None
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop > 0 else None])
        total = end + 4 + length
        if len(self.buf) < total:
            return
        body = bytes(self.buf[end + 4 : total])
        del self.buf[:total]
        waiter, self.waiter = self.waiter, None
        waiter.set_result((int(head[9:12]), body))  # type: ignore[union-attr]

    async def request(self, data: bytes) -> tuple[int, bytes]:
        if self.closed:
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)  # type: ignore[union-attr]
        return await self.waiter


async def connect(host: str, port: int) -> Conn:
    _, conn = await asyncio.get_running_loop().create_connection(Conn, host, port)
    return conn


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    bodies: list[Any] = field(default_factory=list)

    def record(self, status: int, body: bytes, latency: float, keep_body: bool) -> None:
        self.latencies.append(latency)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if keep_body:
            self.bodies.append(orjson.loads(body))

    def error(self, exc: BaseException) -> None:
        name = type(exc).__name__
        self.errors[name] = self.errors.get(name, 0) + 1


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def summarize(stats: Stats, duration_s: float, **extra: Any) -> dict[str, Any]:
    lat = sorted(stats.latencies)
    ok = sum(n for s, n in stats.statuses.items() if 200 <= s < 300)
    ms = {
        f"p{k}_ms": (None if (v := percentile(lat, q)) is None else round(v * 1000, 3))
        for k, q in (("50", 0.50), ("90", 0.90), ("99", 0.99), ("999", 0.999), ("100", 1.0))
    }
    bad = sum(n for s, n in stats.statuses.items() if not 200 <= s < 300)
    return {
        "duration_s": round(duration_s, 3),
        "completed": len(lat),
        "ok": ok,
        "ok_per_s": round(ok / duration_s, 1) if duration_s else None,
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "errors": bad + sum(stats.errors.values()),
        "error_kinds": stats.errors,
        **ms,
        **extra,
    }


class Pool:
    """Pre-built requests; if a run outlasts them, more are built inline (and counted)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.secret = spec["secret"].encode()
        self.hostport = f"{spec['host']}:{spec['port']}"
        self.path = spec.get("path", "/webhooks/shop")
        self.items = [self._one() for _ in range(spec.get("pool", 0))]
        self.next = 0
        self.inline = 0

    def _one(self) -> bytes:
        return signed_request(self.secret, self.hostport, self.path)

    def take(self) -> bytes:
        if self.next < len(self.items):
            item = self.items[self.next]
            self.items[self.next] = b""
            self.next += 1
            return item
        self.inline += 1
        return self._one()


async def open_loop(spec: dict[str, Any], pool: Pool) -> dict[str, Any]:
    rate, duration = spec["rate"], spec["duration_s"]
    total = int(rate * duration)
    conns = [await connect(spec["host"], spec["port"]) for _ in range(spec["connections"])]
    stats = Stats()
    counter = itertools.count()
    start = time.perf_counter() + 0.05
    deadline = start + duration + spec.get("drain_s", 10.0)
    unsent = 0

    async def run(conn: Conn) -> None:
        nonlocal unsent
        while (i := next(counter)) < total:
            scheduled = start + i / rate
            now = time.perf_counter()
            if now > deadline:
                unsent += 1
                continue
            if scheduled - now > 0.001:  # timers are ~1 ms coarse: wake a little early, never late
                await asyncio.sleep(scheduled - now - 0.001)
            data = pool.take()
            sent = time.perf_counter()
            try:
                status, body = await conn.request(data)
            except Exception as exc:
                stats.error(exc)
                conn = await connect(spec["host"], spec["port"])
                continue
            stats.record(status, body, time.perf_counter() - max(scheduled, sent), False)

    await asyncio.gather(*(run(c) for c in conns))
    elapsed = time.perf_counter() - start
    return summarize(
        stats, elapsed, offered_per_s=rate, offered=total, unsent_overload=unsent, inline_built=pool.inline
    )


async def storm(spec: dict[str, Any], pool: Pool) -> dict[str, Any]:
    copies, deliveries = spec["copies"], spec["deliveries"]
    groups = [
        [await connect(spec["host"], spec["port"]) for _ in range(copies)]
        for _ in range(spec["connections"] // copies)
    ]
    stats = Stats()
    todo = iter(range(deliveries))
    start = time.perf_counter()

    async def one(conn: Conn, data: bytes) -> None:
        sent = time.perf_counter()
        try:
            status, body = await conn.request(data)
        except Exception as exc:
            stats.error(exc)
            return
        stats.record(status, body, time.perf_counter() - sent, True)

    async def run(group: list[Conn]) -> None:
        for _ in todo:
            data = pool.take()
            await asyncio.gather(*(one(c, data) for c in group))

    await asyncio.gather(*(run(g) for g in groups))
    result = summarize(stats, time.perf_counter() - start, deliveries=deliveries, copies=copies)
    result["accepted"] = sum(b.get("accepted", 0) for b in stats.bodies)
    result["duplicates"] = sum(b.get("duplicates", 0) for b in stats.bodies)
    return result


def main() -> None:
    spec = orjson.loads(sys.argv[1])
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    pool = Pool(spec)
    gc.collect()
    gc.freeze()  # the request pool is long-lived: keep the collector from walking it mid-run
    mode = {"open": open_loop, "storm": storm}[spec["mode"]]
    sys.stdout.write("ready\n")  # the pool is built; the orchestrator starts its meters, then says go
    sys.stdout.flush()
    sys.stdin.readline()
    cpu0 = os.times()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(mode(spec, pool))
    cpu1 = os.times()
    result["loadgen_cpu_s"] = round((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), 3)
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
