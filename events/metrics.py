"""Prometheus metrics of the ingress and workers."""

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "hookyard_ingress_requests_total", "Webhook requests answered", ["source", "status", "reason"]
)
EVENTS = Counter(
    "hookyard_ingress_events_total", "Events carved from accepted requests", ["source", "outcome"]
)  # outcome: new | duplicate
LATENCY = Histogram(
    "hookyard_ingress_seconds",
    "Time to answer a webhook request",
    ["source"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PUBLISHED = Counter("hookyard_published_total", "Event ids published to the broker by the ingress")
PUBLISH_FAILURES = Counter(
    "hookyard_publish_failures_total", "Event ids the ingress could not publish (the relay will)"
)
