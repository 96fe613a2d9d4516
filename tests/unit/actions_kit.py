"""Builders shared by the action tests: a rules folder, an Automation wired to it, stored runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, select

from events.db import action_runs
from events.runtime_flags import FlagCache
from rules.loader import load_rules
from rules.ruleset import RuleSet
from tests.helpers import FakeClock
from tests.unit.rules_kit import write
from tests.unit.test_processing import ORDER, add_event
from workers import actions, processing
from workers.automation import Automation

WEBHOOK = "http://slack.test/services/T0/B0/secret"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ENV = {"SLACK_WEBHOOK_URL": WEBHOOK, "HOOK_SECRET": SECRET}


def rule(name: str, actions_toml: str, *, extra: str = "", when: str = "") -> str:
    """A rule on Shopify order.created whose total (10.00 EUR in ORDER) is over 5."""
    return (
        f'name = "{name}"\n{extra}\n[when]\ntypes = ["order.created"]\n{when}'
        'all = [{ path = "records.order.total.amount", op = "gt", value = 5 }]\n'
        f"{actions_toml}"
    )


SLACK = (
    '[[actions]]\ntype = "slack.post"\nwebhook_url = "${SLACK_WEBHOOK_URL}"\n'
    'text = "Order {{ records.order.external_id }}"\n'
)
TAG = '[[actions]]\ntype = "event.tag"\ntags = ["big", "{{ source }}"]\n'


@dataclass
class Rig:
    """A rules folder, the processing context that records matches, and what was published."""

    engine: Engine
    folder: Path
    clock: FakeClock
    published: list[str] = field(default_factory=list)
    flags: FlagCache = field(default_factory=lambda: FlagCache(0.0))

    def rules(self) -> RuleSet:
        return load_rules(self.folder, env=ENV)

    def write(self, name: str, text: str) -> None:
        write(self.folder, f"{name}.toml", text)

    def context(self) -> processing.Context:
        automation = Automation(
            self.rules,
            self.flags,
            relay_grace_s=30,
            publish=lambda ids: self.published.extend(ids) or len(ids),
        )
        return processing.Context(sources={}, lease_s=30, clock=self.clock, automation=automation)

    def process(self, payload: dict[str, Any] = ORDER, **overrides: Any) -> str:
        event_id = add_event(self.engine, payload, **overrides)
        assert processing.process(self.engine, event_id, self.context()) == processing.Outcome.DONE
        return event_id

    def runs(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(action_runs).order_by(action_runs.c.created_at, action_runs.c.idempotency_key)
                )
            )

    def action_context(
        self, handler: Callable[[httpx.Request], httpx.Response], **kw: Any
    ) -> actions.ActionContext:
        return actions.ActionContext(
            rules=self.rules,
            lease_s=30,
            http=httpx.Client(transport=httpx.MockTransport(handler)),
            rand=lambda: 1.0,
            clock=self.clock,
            **kw,
        )
