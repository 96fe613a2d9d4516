"""Prometheus metrics of the rules (labels bounded by the number of rules)."""

from prometheus_client import Counter

RELOADS = Counter(
    "hookyard_rules_reloads_total", "Rule folder reloads after a change", ["outcome"]
)  # outcome: ok | failed (the last good rules stay in force)

RULE_MATCHES = Counter(
    "hookyard_rule_matches_total", "What rules did with the events they matched", ["rule", "outcome"]
)
# outcome, counted per event: matched (a live rule held; throttled ones included), throttled (held
# back by the throttle, or replaced by a later match under debounce), shadow (held in shadow mode);
# counted per action: fired (done), failed (dead-lettered).
MATCHED, THROTTLED, SHADOW, FIRED, FAILED = "matched", "throttled", "shadow", "fired", "failed"
