"""Metrics: the exact names and label sets, the inbox gauges read from the database, and the sum of
the multiprocess files of several launchers."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine

from events import metrics
from events.db import EventState, utcnow
from events.exposition import FilesCollector, InboxCollector
from tests.unit.test_processing import add_event

EXPECTED = {
    "hookyard_beat_leading": ("gauge", ("lease",)),
    "hookyard_beat_leadership_changes_total": ("counter", ("change",)),
    "hookyard_ingress_requests_total": ("counter", ("source", "status", "reason")),
    "hookyard_ingress_events_total": ("counter", ("source", "outcome")),
    "hookyard_ingress_request_duration_seconds": ("histogram", ("source",)),
    "hookyard_verification_failures_total": ("counter", ("source", "reason")),
    "hookyard_published_total": ("counter", ()),
    "hookyard_publish_failures_total": ("counter", ()),
    "hookyard_queue_wait_seconds": ("histogram", ("vendor",)),
    "hookyard_processing_duration_seconds": ("histogram", ("source", "outcome")),
    "hookyard_end_to_end_seconds": ("histogram", ("source",)),
    "hookyard_retries_total": ("counter", ("source", "error_class")),
    "hookyard_dead_letters_total": ("counter", ("source", "error_class")),
    "hookyard_relay_republished_total": ("counter", ("vendor",)),
    "hookyard_oauth_refreshes_total": ("counter", ("source", "outcome")),
    "hookyard_oauth_installs_total": ("counter", ("source", "step", "outcome")),
    "hookyard_sync_runs_total": ("counter", ("source", "stream", "status")),
    "hookyard_sync_records_total": ("counter", ("source", "stream", "outcome")),
    "hookyard_fetches_total": ("counter", ("source", "stream", "outcome")),
    "hookyard_alerts_total": ("counter", ("source", "alert", "kind", "transition")),
    "hookyard_monitor_runs_total": ("counter", ("outcome",)),
    "hookyard_ui_rejections_total": ("counter", ("reason",)),
    "hookyard_api_rejections_total": ("counter", ("status", "error")),
}
EXPECTED_GAUGES = {
    "hookyard_inbox_events": ("source", "state"),
    "hookyard_delay_store_events": ("source",),
    "hookyard_oldest_unfinished_event_age_seconds": ("source",),
    "hookyard_inbox_stats_up": (),
}
EXPECTED_MONITOR_GAUGES = {
    "hookyard_source_health_score": ("source",),
    "hookyard_sla_breached": ("source", "target"),
    "hookyard_anomaly_active": ("source", "kind"),
    "hookyard_api_calls_today": ("source",),
    "hookyard_api_daily_quota": ("source",),
}


def full_name(metric: object) -> str:
    """prometheus-client keeps a counter's name without `_total`."""
    kind, name = metric._type, metric._name  # type: ignore[attr-defined]
    return f"{name}_total" if kind == "counter" else name


def test_every_metric_has_its_exact_name_type_and_labels() -> None:
    """The label sets are a contract with dashboards and alert rules: any change must be deliberate."""
    found = {
        full_name(m): (m._type, tuple(m._labelnames))  # type: ignore[attr-defined]
        for m in metrics.PROCESS_METRICS
    }
    assert found == EXPECTED
    assert {name: labels for name, (_, labels) in metrics.INBOX_GAUGES.items()} == EXPECTED_GAUGES
    assert {name: labels for name, (_, labels) in metrics.MONITOR_GAUGES.items()} == EXPECTED_MONITOR_GAUGES
    for name in [*found, *EXPECTED_GAUGES, *EXPECTED_MONITOR_GAUGES]:
        assert name.startswith("hookyard_")
        assert not name.endswith(("_ms", "_milliseconds", "_minutes"))


def scrape(*collectors: object) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Render the collectors as Prometheus text and parse it back: name → labels → value."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)  # type: ignore[arg-type]
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_inbox_gauges_count_unfinished_and_dead_events_per_source(engine: Engine) -> None:
    """States, retries still waiting, and the oldest unfinished age; done events are not counted and a
    configured source with nothing stored shows zeros."""
    now = utcnow()
    add_event(engine, {}, state=EventState.ACCEPTED, received_at=now - timedelta(seconds=90))
    add_event(engine, {}, state=EventState.PROCESSING, received_at=now - timedelta(seconds=30))
    add_event(engine, {}, state=EventState.RETRY, available_at=now + timedelta(seconds=60))
    add_event(engine, {}, state=EventState.RETRY, available_at=now - timedelta(seconds=1))
    add_event(engine, {}, state=EventState.DEAD, received_at=now - timedelta(days=3))
    add_event(engine, {}, state=EventState.DONE, received_at=now - timedelta(days=9))
    add_event(engine, {}, source="github", vendor="github", state=EventState.DEAD)
    collector = InboxCollector(engine, ["shop", "idle"], cache_s=5, timeout_s=2, clock=lambda: now)

    got = scrape(collector)

    assert got["hookyard_inbox_stats_up"] == {(): 1.0}
    events = {dict(k)["source"] + "/" + dict(k)["state"]: v for k, v in got["hookyard_inbox_events"].items()}
    assert events == {
        "shop/accepted": 1,
        "shop/processing": 1,
        "shop/retry": 2,
        "shop/dead": 1,
        "github/accepted": 0,
        "github/processing": 0,
        "github/retry": 0,
        "github/dead": 1,
        "idle/accepted": 0,
        "idle/processing": 0,
        "idle/retry": 0,
        "idle/dead": 0,
    }
    delayed = {dict(k)["source"]: v for k, v in got["hookyard_delay_store_events"].items()}
    assert delayed == {"shop": 1, "github": 0, "idle": 0}
    oldest = {dict(k)["source"]: v for k, v in got["hookyard_oldest_unfinished_event_age_seconds"].items()}
    assert oldest == {"shop": 90.0, "github": 0.0, "idle": 0.0}


def test_inbox_gauges_are_cached_and_a_failed_read_says_so(engine: Engine, tmp_path: Path) -> None:
    """Within cache_s a scrape reuses the last read; a database that cannot answer gives up = 0 only."""
    ticks = [0.0]
    collector = InboxCollector(engine, ["shop"], cache_s=5, timeout_s=2, monotonic=lambda: ticks[0])
    assert scrape(collector)["hookyard_inbox_events"][(("source", "shop"), ("state", "accepted"))] == 0
    add_event(engine, {})
    ticks[0] = 4.9
    assert scrape(collector)["hookyard_inbox_events"][(("source", "shop"), ("state", "accepted"))] == 0
    ticks[0] = 5.0
    assert scrape(collector)["hookyard_inbox_events"][(("source", "shop"), ("state", "accepted"))] == 1

    missing = create_engine(f"sqlite:///{tmp_path}/empty.db")  # no tables: the query fails
    broken = InboxCollector(missing, ["shop"], cache_s=5, timeout_s=2)
    assert scrape(broken) == {"hookyard_inbox_stats_up": {(): 0.0}}
    missing.dispose()


LAUNCHER = """
import sys
from pathlib import Path
from events.multiprocess import prepare_process_dir
prepare_process_dir(Path(sys.argv[1]), sys.argv[2])
from events import metrics
metrics.REQUESTS.labels("shop", "200", "accepted").inc(int(sys.argv[3]))
metrics.END_TO_END.labels("shop").observe(0.3)
print("ready", flush=True)
sys.stdin.read()  # stay alive until the test closes stdin
"""


def launch(base: Path, kind: str, count: int) -> subprocess.Popen[str]:
    """A launcher process that wrote its metrics and stays alive until its stdin is closed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(base), kind, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    proc.wait(timeout=30)
    proc.stdout.close()


def accepted(collector: FilesCollector) -> float:
    samples = scrape(collector)["hookyard_ingress_requests_total"]
    return samples[(("reason", "accepted"), ("source", "shop"), ("status", "200"))]


def test_files_of_every_launcher_on_the_machine_add_up(tmp_path: Path) -> None:
    """Two live launchers (web and worker) write their own directories and the machine-wide sum counts
    both; a launcher starting removes the directories of launchers on this host that are gone, and
    never those of another host."""
    base = tmp_path / "metrics"
    foreign = base / "worker-1-some-other-host"
    foreign.mkdir(parents=True)
    collector = FilesCollector([str(base / "*" / "*.db")])
    web, worker = launch(base, "web", 3), launch(base, "worker", 4)
    try:
        assert accepted(collector) == 7.0
        assert scrape(collector)["hookyard_end_to_end_seconds_count"] == {(("source", "shop"),): 2.0}
        stop(web)
        assert accepted(collector) == 7.0  # a launcher that is gone stays counted until …
        web = launch(base, "web", 5)  # … the next one on this host starts
        assert accepted(collector) == 4.0 + 5.0
        names = sorted(p.name for p in base.iterdir())
        assert names == sorted(
            [
                foreign.name,
                f"web-{web.pid}-{socket.gethostname()}",
                f"worker-{worker.pid}-{socket.gethostname()}",
            ]
        )
    finally:
        for proc in (web, worker):
            if proc.poll() is None:
                stop(proc)


def test_the_directory_must_be_chosen_before_any_metric_exists(tmp_path: Path) -> None:
    """Choosing the directory after events.metrics was imported would leave its metrics per process."""
    code = (
        "import sys\nfrom pathlib import Path\nimport events.metrics\n"
        "from events.multiprocess import prepare_process_dir\n"
        "prepare_process_dir(Path(sys.argv[1]), 'web')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "imported before the metrics directory was chosen" in result.stderr
