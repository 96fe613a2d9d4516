"""Spawned processes (each in its own session, so a whole tree can be signalled), and a sampler
that records peak RSS per role and CPU seconds per role, including everyone else on the machine."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.waiting import free_port, wait_for  # noqa: F401 - re-exported for bench modules


@dataclass
class Proc:
    role: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the process group (a celery worker and its pool children), then SIGKILL."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.popen.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):  # orphaned pool children, if any
            os.killpg(self.pid, signal.SIGKILL)


def spawn(role: str, argv: list[str], env: dict[str, str], cwd: Path, log_dir: Path) -> Proc:
    log = log_dir / f"{role}.log"
    with log.open("ab") as sink:
        popen = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Proc(role, popen, log)


def _cpu(procs: Iterable[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
    return out


def service_procs(names: tuple[str, ...] = ("postgres", "redis-server")) -> dict[str, list[psutil.Process]]:
    found: dict[str, list[psutil.Process]] = {n: [] for n in names}
    for p in psutil.process_iter(["name"]):
        for n in names:
            if (p.info["name"] or "").startswith(n):
                found[n].append(p)
    return found


@dataclass
class Sampler:
    """Background thread: every `interval_s`, the RSS of each watched role (tree sum and largest
    single process). `cpu()` brackets a phase: CPU seconds per role, services, and the rest."""

    interval_s: float = 0.1
    watched: dict[str, Proc] = field(default_factory=dict)
    peak_rss: dict[str, dict[str, int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="rss-sampler")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def watch(self, proc: Proc) -> None:
        with self._lock:
            self.watched[proc.role] = proc

    def unwatch(self, proc: Proc) -> None:
        with self._lock:
            self.watched.pop(proc.role, None)

    def reset(self, role: str) -> None:
        with self._lock:
            self.peak_rss.pop(role, None)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                watched = list(self.watched.items())
            for role, proc in watched:
                rss = []
                for p in proc.tree():
                    with contextlib.suppress(psutil.Error):
                        rss.append(p.memory_info().rss)
                if not rss:
                    continue
                with self._lock:
                    peak = self.peak_rss.setdefault(role, {"tree": 0, "largest": 0, "processes": 0})
                    peak["tree"] = max(peak["tree"], sum(rss))
                    peak["largest"] = max(peak["largest"], max(rss))
                    peak["processes"] = max(peak["processes"], len(rss))


class CpuMeter:
    """CPU seconds used during a phase by our roles, PostgreSQL, Redis and everything else.

    Per process: a process that exits mid-phase loses its share (an undercount, never negative);
    one that starts mid-phase (a new PostgreSQL backend) counts from zero."""

    def __init__(self, roles: dict[str, Proc | list[psutil.Process]]) -> None:
        self.roles = roles

    def _snapshot(self) -> dict[str, dict[int, float]]:
        snap = {
            role: _cpu(proc.tree() if isinstance(proc, Proc) else proc) for role, proc in self.roles.items()
        }
        snap.update({name: _cpu(procs) for name, procs in service_procs().items()})
        t = psutil.cpu_times()
        snap["_machine"] = {0: t.user + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0) + t.nice}
        return snap

    def __enter__(self) -> CpuMeter:
        self.before = self._snapshot()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        after = self._snapshot()
        self.wall_s = time.perf_counter() - self.t0
        used = {
            k: sum(max(0.0, v - self.before.get(k, {}).get(pid, 0.0)) for pid, v in pids.items())
            for k, pids in after.items()
        }
        machine = used.pop("_machine")
        used["other (not this benchmark)"] = max(0.0, machine - sum(used.values()))
        self.cores = {k: round(v / self.wall_s, 2) for k, v in used.items()}
