"""Saturation with wrk (the Debian package `wrk`; `make bench` installs it if missing).

wrk is C on one thread, so at saturation the client takes a small share of the cores the server
needs (the Python generator in bench/loadgen.py, kept for paced loads and end-to-end latency, would
take far more). Every request is a distinct signed delivery built before the clock starts by
`bench.payloads.signed_request` — own body, own X-Shopify-Event-Id and HMAC — so a replay guard on
the body or a dedupe on the id never turns one into a duplicate; wrk sends them in order from a file
(NUL-separated) through the Lua script below and reports its counts and latency percentiles.

A warm-up run (its own requests) precedes the measured one. `ok_total` counts the 2xx of both: what
the server must have stored.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench.payloads import signed_request
from bench.procs import CpuMeter, Proc

THREADS = 1
TIMEOUT_S = 30  # wrk's default (2 s) would count a slow answer as an error
OTHER = "other (not this benchmark)"  # CpuMeter's name for the rest of the machine

SCRIPT = r"""
local requests, next_one = {}, 0
init = function(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  local from = 1
  while true do
    local stop = string.find(data, "\0", from, true)
    if not stop then break end
    requests[#requests + 1] = string.sub(data, from, stop - 1)
    from = stop + 1
  end
end
request = function()
  next_one = next_one % #requests + 1
  return requests[next_one]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nRESULT {"requests":%d,"duration_us":%d,"status":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"""


def binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed: `apt-get install wrk` (`make bench` does it)")
    return found


def _requests(path: Path, count: int, secret: bytes, hostport: str, target: str) -> None:
    with path.open("wb") as out:
        for _ in range(count):
            out.write(signed_request(secret, hostport, target))
            out.write(b"\0")


def _run(
    url: str, script: Path, requests: Path, connections: int, seconds: float, meter_roles: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, float]]:
    argv = [binary(), "-t", str(THREADS), "-c", str(connections), "-d", f"{max(1, round(seconds))}s"]
    argv += ["--timeout", f"{TIMEOUT_S}s", "--latency", "-s", str(script), url, "--", str(requests)]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    with CpuMeter(meter_roles) as meter:
        proc = subprocess.run(argv, capture_output=True, timeout=seconds + 60, check=False)
    # wrk has exited before the meter's last look: its CPU comes from its rusage once reaped
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    cores = dict(meter.cores)
    cores["loadgen"] = round(used / meter.wall_s, 2)
    cores[OTHER] = round(max(0.0, cores.get(OTHER, 0.0) - cores["loadgen"]), 2)
    out = proc.stdout.decode()
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {out[-300:]} {proc.stderr.decode()[-300:]}")
    return orjson.loads(lines[-1][len("RESULT ") :]), cores


def saturate(
    host: str, port: int, secret: str, spec: dict[str, Any], roles: dict[str, Proc | list[psutil.Process]]
) -> dict[str, Any]:
    """Closed loop: `connections` keep-alive connections, `warmup_s` then `duration_s` measured.
    `pool` requests are built for the measured run (wrk starts over if it sends more: duplicates,
    visible as rows < 2xx)."""
    hostport, target = f"{host}:{port}", spec.get("path", "/webhooks/shop")
    url = f"http://{hostport}{target}"
    warmup_s, seconds, connections = spec["warmup_s"], spec["duration_s"], spec["connections"]
    with tempfile.TemporaryDirectory(prefix="hookyard-wrk-") as tmp:
        script, warm, measured = Path(tmp, "requests.lua"), Path(tmp, "warm"), Path(tmp, "measured")
        script.write_text(SCRIPT)
        pool = spec["pool"]
        warm_pool = int(pool * warmup_s / seconds) + 100
        _requests(warm, warm_pool, secret.encode(), hostport, target)
        _requests(measured, pool, secret.encode(), hostport, target)
        warm_res, _ = _run(url, script, warm, connections, warmup_s, {})
        res, cores = _run(url, script, measured, connections, seconds, roles)
    duration = res["duration_us"] / 1e6
    ok = res["requests"] - res["status"]
    ms = {k.replace("_us", "_ms"): round(res[k] / 1000, 3) for k in ("p50_us", "p90_us", "p99_us", "p999_us")}
    socket_errors = {k: res[k] for k in ("connect", "read", "write", "timeout") if res[k]}
    return {
        "tool": f"wrk -t{THREADS} -c{connections}",
        "duration_s": round(duration, 3),
        "completed": res["requests"],
        "ok": ok,
        "ok_per_s": round(ok / duration, 1),
        "errors": res["status"] + sum(socket_errors.values()),
        "error_kinds": socket_errors,
        **ms,
        "p100_ms": round(res["max_us"] / 1000, 3),
        "ok_total": ok + warm_res["requests"] - warm_res["status"],
        # wrk stops waiting for what is in flight when its time is up: at most one request per
        # connection per run was sent (and perhaps stored) but never counted
        "uncounted_max": 2 * connections,
        "warmup_s": warmup_s,
        "pool_wrapped": res["requests"] > pool or warm_res["requests"] > warm_pool,
        "cpu_cores": cores,
    }
