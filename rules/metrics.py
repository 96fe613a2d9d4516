"""Prometheus metrics of the rules."""

from prometheus_client import Counter

RELOADS = Counter(
    "hookyard_rules_reloads_total", "Rule folder reloads after a change", ["outcome"]
)  # outcome: ok | failed (the last good rules stay in force)
