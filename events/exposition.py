"""How metrics leave the processes: the sum of the multiprocess files, and gauges read from the database
at scrape time. Where the files live: `events.multiprocess`."""

from __future__ import annotations

import glob
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import structlog
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine, case, func, select

from events import metrics
from events.db import UNFINISHED, EventState, events, utcnow
from events.multiprocess import process_dir

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
        self._stats: InboxStats | None = None
        self._now = clock()

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            if self._read_at is None or self._monotonic() - self._read_at >= self._cache_s:
                self._now = self._clock()
                try:
                    self._stats = read_inbox_stats(self._engine, self._now, self._timeout_s)
                except Exception as exc:
                    self._stats = None
                    log.warning("metrics.inbox_unavailable", error=repr(exc))
                self._read_at = self._monotonic()
            return list(inbox_families(self._stats, self._sources, self._now))
