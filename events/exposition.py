"""How metrics leave the processes: the sum of the multiprocess files, and gauges read from the database
at scrape time. Where the files live: `events.multiprocess`."""

from __future__ import annotations

import glob
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine, case, func, select

from events import counts, metrics, monitoring
from events.db import UNFINISHED, EventState, events, utcnow
from events.health.quota import day_start
from events.multiprocess import process_dir
from events.sources import Source

log = structlog.get_logger()

GAUGE_STATES = (EventState.ACCEPTED, EventState.PROCESSING, EventState.RETRY, EventState.DEAD)


class FilesCollector(Collector):
    """The sum of the metric files that match `patterns`, globbed again at every scrape."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self._patterns = tuple(patterns)

    def collect(self) -> Iterable[Metric]:
        for _ in range(3):
            files = sorted({f for pattern in self._patterns for f in glob.glob(pattern)})
            try:
                return list(MultiProcessCollector.merge(files, accumulate=True))
            except FileNotFoundError:  # a launcher removed a stale directory meanwhile: glob again
                continue
        return []


class _DefaultRegistry(Collector):
    """Single-process mode: this process's own metrics."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def machine_collector(base: Path) -> Collector:
    """Every Hookyard process on this machine (multiprocess mode), or this process alone."""
    own = process_dir()
    if own is None:
        return _DefaultRegistry()
    return FilesCollector([str(own / "*.db"), str(base.resolve() / "*" / "*.db")])


def own_collector() -> Collector:
    """The processes of this launcher only (what `hookyard worker --metrics-port` serves)."""
    own = process_dir()
    return _DefaultRegistry() if own is None else FilesCollector([str(own / "*.db")])


@dataclass
class InboxStats:
    """What the inbox gauges show, read in one query."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (source, state) → events
    delayed: dict[str, int] = field(default_factory=dict)  # source → retries not due yet
    oldest: dict[str, datetime] = field(default_factory=dict)  # source → oldest unfinished received_at


def read_inbox_stats(engine: Engine, now: datetime, timeout_s: float) -> InboxStats:
    """One grouped query over the unfinished and dead events (the state index; done rows are not read)."""
    stmt = (
        select(
            events.c.source,
            events.c.state,
            func.count(),
            func.min(events.c.received_at),
            func.sum(case((events.c.available_at > now, 1), else_=0)),
        )
        .where(events.c.state.in_(GAUGE_STATES))
        .group_by(events.c.source, events.c.state)
    )
    stats = InboxStats()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(int(timeout_s * 1000), 1)}")
        for source, state, count, oldest, later in conn.execute(stmt):
            stats.counts[(source, state)] = count
            if state == EventState.RETRY:
                stats.delayed[source] = int(later or 0)
            if state in UNFINISHED and oldest is not None:
                stats.oldest[source] = min(oldest, stats.oldest.get(source, oldest))
    return stats


def inbox_families(stats: InboxStats | None, sources: Iterable[str], now: datetime) -> Iterator[Metric]:
    """The inbox gauges; every configured source appears, with zeros when it has nothing waiting."""
    up = GaugeMetricFamily(metrics.INBOX_STATS_UP, metrics.INBOX_GAUGES[metrics.INBOX_STATS_UP][0])
    up.add_metric([], 0.0 if stats is None else 1.0)
    yield up
    if stats is None:
        return
    names = sorted(set(sources) | {source for source, _ in stats.counts})

    def family(name: str) -> GaugeMetricFamily:
        help_text, labels = metrics.INBOX_GAUGES[name]
        return GaugeMetricFamily(name, help_text, labels=list(labels))

    counts, delayed, oldest = (
        family(metrics.INBOX_EVENTS),
        family(metrics.DELAY_STORE_EVENTS),
        family(metrics.OLDEST_UNFINISHED),
    )
    for source in names:
        for state in GAUGE_STATES:
            counts.add_metric([source, state], stats.counts.get((source, state), 0))
        delayed.add_metric([source], stats.delayed.get(source, 0))
        first = stats.oldest.get(source)
        oldest.add_metric([source], max((now - first).total_seconds(), 0.0) if first else 0.0)
    yield from (counts, delayed, oldest)


class InboxCollector(Collector):
    """The inbox gauges, read from the database at scrape time at most once every `cache_s`
    (a failed read is remembered as long, so a database outage is not hammered by scrapes)."""

    def __init__(
        self,
        engine: Engine,
        sources: Iterable[str],
        *,
        cache_s: float,
        timeout_s: float,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._sources = tuple(sources)
        self._cache_s = cache_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._stats: Any = None
        self._now = clock()

    def read(self, now: datetime) -> Any:
        return read_inbox_stats(self._engine, now, self._timeout_s)

    def families(self, stats: Any, now: datetime) -> Iterator[Metric]:
        return inbox_families(stats, self._sources, now)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            if self._read_at is None or self._monotonic() - self._read_at >= self._cache_s:
                self._now = self._clock()
                try:
                    self._stats = self.read(self._now)
                except Exception as exc:
                    self._stats = None
                    log.warning("metrics.inbox_unavailable", collector=type(self).__name__, error=repr(exc))
                self._read_at = self._monotonic()
            return list(self.families(self._stats, self._now))


@dataclass
class MonitorStats:
    """The monitor's last judgement per source, today's vendor API calls and the quotas."""

    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls_today: dict[str, int] = field(default_factory=dict)


class MonitorCollector(InboxCollector):
    """Health scores, open SLA and anomaly alerts, API calls today against the quota (`MONITOR_GAUGES`),
    read from the database at scrape time, cached like the inbox gauges."""

    def __init__(self, engine: Engine, sources: Mapping[str, Source], **kwargs: Any) -> None:
        super().__init__(engine, sources, **kwargs)
        self._configured = sources

    def read(self, now: datetime) -> MonitorStats:
        with self._engine.connect() as conn:
            return MonitorStats(
                snapshots=monitoring.snapshots(conn),
                calls_today=counts.totals(conn, counts.VENDOR_CALLS, day_start(now)),
            )

    def families(self, stats: MonitorStats | None, now: datetime) -> Iterator[Metric]:
        if stats is None:
            return

        def family(name: str) -> GaugeMetricFamily:
            help_text, labels = metrics.MONITOR_GAUGES[name]
            return GaugeMetricFamily(name, help_text, labels=list(labels))

        score, sla, anomaly, calls, quota = (family(name) for name in metrics.MONITOR_GAUGES)
        for name in sorted(self._configured):
            snap = stats.snapshots.get(name, {})
            if snap.get("score") is not None:
                score.add_metric([name], snap["score"])
            for target, state in (snap.get("sla") or {}).items():
                sla.add_metric([name, target], 1.0 if state.get("status") == "breached" else 0.0)
            for kind, state in (snap.get("anomalies") or {}).items():
                anomaly.add_metric([name, kind], 1.0 if state == "breached" else 0.0)
            calls.add_metric([name], stats.calls_today.get(name, 0))
            limit = self._configured[name].api.daily_quota
            if limit is not None:
                quota.add_metric([name], limit)
        yield from (score, sla, anomaly, calls, quota)
