"""`python -m bench --profile`: py-spy samples the ingress at saturation and the worker draining a
backlog; writes collapsed stacks (load them into speedscope.app or flamegraph.pl) and a top-N
summary to bench/results/profile/.

py-spy attaches with ptrace (root, or CAP_SYS_PTRACE). Sampling costs the target a little CPU,
so the throughput printed during a profile run is not a number to quote.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from bench import phases
from bench.procs import wait_for
from bench.stack import HOOKYARD_DB, Stack


def pyspy() -> str:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return exe


def record(pid: int, seconds: float, out: Path, subprocesses: bool = False) -> subprocess.Popen[bytes]:
    args = [
        pyspy(),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "200",
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
    ]
    if subprocesses:
        args.append("--subprocesses")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


PROJECT = ("ops/", "events/", "workers/", "connectors/", "schemas/")
PLUMBING = ("ops/cli.py",)


def summarize(raw: Path, top: int = 25) -> dict[str, Any]:
    """Shares of all samples: self time per function (leaf frame), self time per library, and
    inclusive time per project function (what each of our functions costs with its callees)."""
    leaf: Counter[str] = Counter()
    library: Counter[str] = Counter()
    project: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_short(f) for f in stack.split(";")]
        leaf[frames[-1]] += n
        library[_library(frames[-1])] += n
        for f in {f for f in frames if _path(f).startswith(PROJECT) and not _path(f).startswith(PLUMBING)}:
            project[f] += n

    def pct(c: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in c.most_common(top)] if total else []

    return {
        "samples": total,
        "self": pct(leaf),
        "self_by_library": pct(library),
        "project_inclusive": pct(project),
    }


def _path(frame: str) -> str:
    return frame.rpartition(" (")[2].rstrip(")")


def _library(frame: str) -> str:
    path = _path(frame)
    if path.startswith(PROJECT):
        return "hookyard (" + path.split("/", 1)[0] + ")"
    head = path.split("/", 1)[0]
    return head if "/" in path else f"stdlib ({head})"


def _short(frame: str) -> str:
    """`func (path/to/site-packages/pkg/mod.py:12)` → `func (pkg/mod.py)`."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "wt-bench/", "lib/python3.11/", "lib/python3.12/", "lib/python3.13/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name


def run(
    stack: Stack, *, seconds: float, events: int, concurrency: int, out_dir: Path, log: Any
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    # ingress at saturation
    stack.reset_data()
    web, port = stack.start_hookyard_web()
    try:
        raw = out_dir / "ingress.txt"
        spy = record(web.pid, seconds, raw)
        load = phases.load(
            stack,
            port,
            {
                "mode": "closed",
                "connections": 64,
                "warmup_s": 0.5,
                "duration_s": seconds,
                "pool": int(seconds * 3000),
            },
            {"server": web},
        )
        spy.wait(timeout=60)
        result["ingress"] = {"load": {k: load[k] for k in ("ok_per_s", "p50_ms", "p99_ms")}, **summarize(raw)}
        log(f"  profiled ingress: {load['ok_per_s']:.0f} ok/s under py-spy → {raw}")
    finally:
        stack.stop(web)
    # worker draining a backlog
    from events.queue import PROCESS_TASK, app
    from events.settings import get_settings

    stack.reset_data()
    ids = phases.preload_inbox(stack, events)
    client = redis.Redis.from_url(stack.redis_url(HOOKYARD_DB))
    per_message = get_settings().ids_per_message
    messages = phases.fast_publish(app, PROCESS_TASK, phases.HOOKYARD_QUEUE, ids, client, per_message)
    client.close()
    worker = stack.start_hookyard_worker(concurrency)
    try:
        wait_for(
            lambda: stack.queue_length(HOOKYARD_DB, phases.HOOKYARD_QUEUE) < messages,
            timeout=60,
            what="the worker to start",
        )
        raw = out_dir / "worker.txt"
        spy = record(worker.pid, seconds, raw, subprocesses=True)
        spy.wait(timeout=60)
        done = stack.count_done()
        result["worker"] = {"done_during_profile": done, **summarize(raw)}
        log(f"  profiled worker: {done} events done → {raw}")
    finally:
        stack.stop(worker)
    return result


def print_summary(result: dict[str, Any]) -> None:
    for name, data in result.items():
        print(f"\nPROFILE {name}: {data.get('samples')} samples (py-spy, 200 Hz, idle excluded)")
        for title, key, n in (
            ("self time by library", "self_by_library", 12),
            ("self time (leaf frames)", "self", 15),
            ("inclusive time of Hookyard functions", "project_inclusive", 20),
        ):
            print(f"  {title}:")
            for frame, pct in data.get(key, [])[:n]:
                print(f"    {pct:5.1f}%  {frame}")
