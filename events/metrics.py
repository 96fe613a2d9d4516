"""Every Prometheus metric of Hookyard, defined here and nowhere else.

Names follow Prometheus conventions (base units, `_total` for counters, `_seconds` for durations);
labels are bounded: a configured source name (`_unknown` for any other path), a vendor (connector
name), a status code, a reason code or error class taken from the code, never from a request.

Metrics from every process. `hookyard web --workers N` and the prefork children of `hookyard worker`
are separate processes, so they use prometheus-client's multiprocess mode: each process writes its
values to memory-mapped files in the directory named by PROMETHEUS_MULTIPROC_DIR, which `ops.cli`
sets (one directory per launcher, see `events.exposition`) before this module is imported. Cost,
measured with `python -m bench.metrics_cost` (best of 5 × 200,000 calls, one core of a 2-core AMD EPYC,
prometheus-client 0.26): `counter.labels(…).inc()` 0.92 µs in one process vs 1.45 µs in
multiprocess mode, `histogram.labels(…).observe()` 1.17 µs vs 2.17 µs. A webhook request makes four
observations, so multiprocess mode adds about 2.5 µs to a request that costs hundreds.

The inbox gauges (`INBOX_GAUGES`) are not kept by any process: the web app computes them from the
database when it is scraped (`events.exposition.InboxCollector`).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

UNKNOWN_SOURCE = "_unknown"  # the source label of a request to a path that names no source

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SLOW = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
_LONG = (*_SLOW, 14400.0, 86400.0)  # end to end includes retries, which may wait for hours

# ingress (events/ingress.py, events/publisher.py)
REQUESTS = Counter(
    "hookyard_ingress_requests_total", "Webhook requests answered", ["source", "status", "reason"]
)
EVENTS = Counter(
    "hookyard_ingress_events_total", "Events carved from accepted requests", ["source", "outcome"]
)  # outcome: new | duplicate
LATENCY = Histogram(
    "hookyard_ingress_request_duration_seconds",
    "Time to answer a webhook request",
    ["source"],
    buckets=_FAST,
)
VERIFICATION_FAILURES = Counter(
    "hookyard_verification_failures_total",
    "Requests refused because their signature, timestamp or signing header did not verify",
    ["source", "reason"],
)
PUBLISHED = Counter("hookyard_published_total", "Event ids published to the broker by the ingress")
PUBLISH_FAILURES = Counter(
    "hookyard_publish_failures_total", "Event ids the ingress could not publish (the relay will)"
)

# workers (workers/tasks.py, workers/processing.py, workers/relay.py)
QUEUE_WAIT = Histogram(
    "hookyard_queue_wait_seconds",
    "From the publish of the message that carried an event to the worker claiming it",
    ["vendor"],
    buckets=_SLOW,
)
PROCESSING = Histogram(
    "hookyard_processing_duration_seconds",
    "From the claim of an event to its recorded outcome",
    ["source", "outcome"],  # outcome: done | retry | dead | lost_lease
    buckets=_FAST + (10.0, 30.0, 60.0),
)
END_TO_END = Histogram(
    "hookyard_end_to_end_seconds",
    "From receiving an event to processing it (processed_at - received_at)",
    ["source"],
    buckets=_LONG,
)
RETRIES = Counter(
    "hookyard_retries_total", "Failed attempts scheduled to be tried again", ["source", "error_class"]
)
DEAD_LETTERS = Counter(
    "hookyard_dead_letters_total", "Events that became dead letters", ["source", "error_class"]
)
RELAYED = Counter(
    "hookyard_relay_republished_total", "Unfinished events the relay published again", ["vendor"]
)

# OAuth connections (events/refresh.py, events/install.py, ops/oauth_web.py)
OAUTH_REFRESHES = Counter(
    "hookyard_oauth_refreshes_total",
    "Access token refreshes: ok, refused (the source needs re-authorizing), failed (transient), "
    "joined (a caller that waited for another's refresh)",
    ["source", "outcome"],
)
OAUTH_INSTALLS = Counter(
    "hookyard_oauth_installs_total",
    "OAuth install steps (start, callback) by outcome: ok or the refusal's code",
    ["source", "step", "outcome"],
)
# syncs (workers/syncing.py)
SYNC_RUNS = Counter("hookyard_sync_runs_total", "Sync runs by how they ended", ["source", "stream", "status"])
SYNC_RECORDS = Counter(
    "hookyard_sync_records_total",
    "Synced records and items by what became of them",
    ["source", "stream", "outcome"],  # outcome: applied | stale | quarantined | changed | covered
)
# event-driven fetches: asks (workers/processing.py) scheduled | coalesced | skipped_stale, runs
# (workers/fetching.py) fetched | skipped_read | waiting_breaker | retry | failed
FETCHES = Counter(
    "hookyard_fetches_total",
    "Event-driven fetches of one object by outcome",
    ["source", "stream", "outcome"],
)

# operations (workers/monitor.py, events/alerts.py, ops/ui)
ALERTS = Counter(
    "hookyard_alerts_total",
    "Alerts raised and recovered by the monitor",
    ["source", "alert", "kind", "transition"],  # alert: sla | anomaly; transition: breach | recovery
)
MONITOR_RUNS = Counter(
    "hookyard_monitor_runs_total", "Monitor evaluations of a source", ["outcome"]
)  # outcome: evaluated | skipped (another run had this slot) | failed
UI_REJECTIONS = Counter(
    "hookyard_ui_rejections_total", "Dashboard requests refused", ["reason"]
)  # reason: no_session | csrf | bad_login | read_only

# beat leadership (events/leader.py)
BEAT_LEADING = Gauge(
    "hookyard_beat_leading",
    "1 while this process holds the lease and sends the schedule (summed over this machine's processes)",
    ["lease"],
    multiprocess_mode="livesum",
)
BEAT_LEADERSHIP = Counter(
    "hookyard_beat_leadership_changes_total", "Beat lease changes seen by this process", ["change"]
)  # change: acquired | lost | released

# operator API (ops/api_errors.py)
API_REJECTIONS = Counter(
    "hookyard_api_rejections_total", "Operator API requests refused", ["status", "error"]
)  # error: the code of the answer's {"error", "detail"}

PROCESS_METRICS = (
    REQUESTS,
    EVENTS,
    LATENCY,
    VERIFICATION_FAILURES,
    PUBLISHED,
    PUBLISH_FAILURES,
    QUEUE_WAIT,
    PROCESSING,
    END_TO_END,
    RETRIES,
    DEAD_LETTERS,
    RELAYED,
    OAUTH_REFRESHES,
    OAUTH_INSTALLS,
    SYNC_RUNS,
    SYNC_RECORDS,
    FETCHES,
    ALERTS,
    MONITOR_RUNS,
    UI_REJECTIONS,
    API_REJECTIONS,
    BEAT_LEADING,
    BEAT_LEADERSHIP,
)

# Gauges computed from the database at scrape time: name → (help, labels).
INBOX_EVENTS = "hookyard_inbox_events"
DELAY_STORE_EVENTS = "hookyard_delay_store_events"
OLDEST_UNFINISHED = "hookyard_oldest_unfinished_event_age_seconds"
INBOX_STATS_UP = "hookyard_inbox_stats_up"
INBOX_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    INBOX_EVENTS: ("Stored events by state (accepted, processing, retry, dead)", ("source", "state")),
    DELAY_STORE_EVENTS: ("Events waiting in the delay store for a retry that is not due yet", ("source",)),
    OLDEST_UNFINISHED: ("Age of the oldest accepted, processing or retrying event", ("source",)),
    INBOX_STATS_UP: ("1 when the inbox gauges could be read from the database, else 0", ()),
}

# Gauges of the monitor's last evaluation and today's API usage, read from the database at scrape time.
HEALTH_SCORE = "hookyard_source_health_score"
SLA_BREACHED = "hookyard_sla_breached"
ANOMALY_ACTIVE = "hookyard_anomaly_active"
API_CALLS_TODAY = "hookyard_api_calls_today"
API_QUOTA = "hookyard_api_daily_quota"
MONITOR_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    HEALTH_SCORE: ("Health score of a source, 0-100 (absent while unknown)", ("source",)),
    SLA_BREACHED: ("1 while an SLA target of the source is breached, else 0", ("source", "target")),
    ANOMALY_ACTIVE: ("1 while an anomaly alert of the source is open, else 0", ("source", "kind")),
    API_CALLS_TODAY: ("Vendor API calls of the source this UTC day", ("source",)),
    API_QUOTA: ("The configured daily vendor API quota of the source", ("source",)),
}
