"""Prometheus metrics of the vendor API layer (client, rate budget, circuit breaker).

Labels are bounded: `vendor` is a connector name, `account` a configured source name, never a URL,
an object id or anything a vendor sends.
"""

from prometheus_client import Counter, Gauge, Histogram

CALLS = Counter(
    "hookyard_vendor_calls_total",
    "Vendor API calls by outcome: 2xx, 4xx, 5xx, throttled, transport, invalid, circuit_open, budget",
    ["vendor", "account", "status_class"],
)
CALL_SECONDS = Histogram(
    "hookyard_vendor_call_seconds",
    "Duration of one HTTP exchange with a vendor API",
    ["vendor", "account"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
THROTTLED = Counter(
    "hookyard_vendor_throttled_total",
    "Answers in which a vendor said slow down (429, Shopify THROTTLED, Slack ratelimited)",
    ["vendor", "account"],
)
BUDGET_WAIT = Counter(
    "hookyard_budget_wait_seconds_total",
    "Seconds callers slept waiting for the shared rate budget",
    ["vendor", "account", "priority"],
)
BREAKER_STATE = Gauge(
    "hookyard_breaker_state",
    "Circuit breaker state as this process last saw it: 0 closed, 1 half-open, 2 open",
    ["vendor", "account"],
)
