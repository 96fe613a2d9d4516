"""Hookyard's own alert events, written into the inbox like any vendor's event.

A breach or a recovery seen by the monitor job (`workers.monitor`) becomes one event of the source
and vendor `hookyard` (the internal connector, `connectors.internal`), inserted in the same
transaction that records the monitor's new state, so an alert is raised exactly once however often
the job runs or restarts. It is then processed like any event, and workflow rules route it, e.g.

    [when]
    vendors = ["hookyard"]
    types = ["alert.*"]

    type                 when
    alert.sla_breached   an SLA target is breached (kind: p95_end_to_end | max_gap)
    alert.anomaly        the event rate or failures are off (kind: stopped | surge | failures)
    alert.recovered      either comes back to normal (the same alert and kind)

The payload: {"source", "alert": "sla" | "anomaly", "kind", "status": "breached" | "recovered",
"detail", "at"}.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import Connection

from connectors.base import Delivery
from connectors.internal import INTERNAL_SOURCE
from events import metrics
from events.db import dialect_insert, events
from events.health.debounce import Transition
from events.inbox import Arrival, rows_for

log = structlog.get_logger()

SLA, ANOMALY = "sla", "anomaly"
SLA_BREACHED = "alert.sla_breached"
ANOMALY_RAISED = "alert.anomaly"
RECOVERED = "alert.recovered"


@dataclass(frozen=True)
class Alert:
    source: str
    alert: str  # SLA | ANOMALY
    kind: str  # the SLA target (p95_end_to_end, max_gap) or the anomaly (stopped, surge, failures)
    transition: Transition
    at: datetime
    detail: str

    @property
    def type(self) -> str:
        if self.transition is Transition.RECOVERY:
            return RECOVERED
        return SLA_BREACHED if self.alert == SLA else ANOMALY_RAISED

    def payload(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "alert": self.alert,
            "kind": self.kind,
            "status": "recovered" if self.transition is Transition.RECOVERY else "breached",
            "detail": self.detail,
            "at": self.at.isoformat(),
        }


def insert(conn: Connection, alerts: Sequence[Alert], relay_grace_s: float) -> list[str]:
    """Store each alert as an inbox event in the caller's transaction; the ids to publish after commit.
    The dedupe key names the source, the alert and the moment, so the same transition is stored once."""
    rows = []
    for alert in alerts:
        body = orjson.dumps(alert.payload())
        key = f"{alert.source}:{alert.alert}:{alert.kind}:{alert.transition}:{alert.at.isoformat()}"
        delivery = Delivery(dedupe_key=key, type=alert.type, payload=alert.payload(), occurred_at=alert.at)
        arrival = Arrival(INTERNAL_SOURCE, INTERNAL_SOURCE, body, {}, [delivery], alert.at.timestamp())
        rows += rows_for(arrival, relay_grace_s)
    if not rows:
        return []
    stmt = dialect_insert(conn.dialect.name)(events).on_conflict_do_nothing().returning(events.c.id)
    return [row.id for row in conn.execute(stmt, rows)]


def announce(alerts: Sequence[Alert]) -> None:
    """A log line and a metric for each alert, once its transaction has committed."""
    for alert in alerts:
        level = log.info if alert.transition is Transition.RECOVERY else log.warning
        level(
            "monitor.alert",
            source=alert.source,
            alert=alert.alert,
            kind=alert.kind,
            type=alert.type,
            detail=alert.detail,
        )
        metrics.ALERTS.labels(alert.source, alert.alert, alert.kind, str(alert.transition)).inc()
