"""deploy/: the Prometheus alert rules pass `promtool check rules` (Debian's prometheus package; CI
installs it) and every metric a Grafana panel or an alert rule names exists in the code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from connectors import metrics as vendor_metrics
from events import metrics
from rules import metrics as rule_metrics
from tests.conftest import need

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "hookyard-alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "hookyard-dashboard.json"
NAME = re.compile(r"\bhookyard_[a-z0-9_]+\b")
SERIES_SUFFIXES = ("_bucket", "_sum", "_count")


def defined() -> set[str]:
    """Every metric name the code exports (counters with `_total`)."""
    names = set(metrics.INBOX_GAUGES) | set(metrics.MONITOR_GAUGES)
    for module in (metrics, vendor_metrics, rule_metrics):
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                kind, name = value._type, value._name  # type: ignore[attr-defined]
                names.add(f"{name}_total" if kind == "counter" else name)
    return names


def named(text: str) -> set[str]:
    """Metric names in PromQL text, histogram series reduced to their metric."""
    found = set()
    for name in NAME.findall(text):
        for suffix in SERIES_SUFFIXES:
            if name.endswith(suffix) and name.removesuffix(suffix) in defined():
                name = name.removesuffix(suffix)
        found.add(name)
    return found


def panel_queries() -> str:
    dashboard = json.loads(DASHBOARD.read_text())
    return "\n".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])


def test_promtool_accepts_the_alert_rules() -> None:
    """`promtool check rules` passes (skipped locally without promtool, a failure in CI)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        need("promtool", FileNotFoundError("promtool (apt-get install prometheus)"))
    result = subprocess.run([str(promtool), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_metric_a_panel_or_rule_names_exists() -> None:
    """No panel or alert queries a metric the code does not export (a renamed metric breaks this)."""
    used = named(panel_queries()) | named(RULES.read_text())
    assert used, "no metric found in deploy/"
    assert used - defined() == set()


def test_the_dashboard_shows_every_hookyard_metric() -> None:
    """Each metric of events/metrics.py and of the vendor client is on some panel (the rules' own
    reload counter is left to the rules' documentation)."""
    shown = named(panel_queries())
    assert {name for name in defined() if not name.startswith("hookyard_rules_")} - shown == set()
