"""`rules test` and `rules simulate`: what a rule would do, read-only, the same as live evaluation."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from events.db import action_runs, event_tags, rule_gates, utcnow
from events.sources import Source
from rules import trial
from tests.helpers import FakeClock
from tests.unit.actions_kit import ENV, Rig
from tests.unit.rules_kit import write
from tests.unit.test_processing import ORDER

BIG = (
    'name = "big-orders"\n[when]\ntypes = ["order.created"]\nvendors = ["shopify"]\n'
    'all = [{ path = "records.order.total.amount", op = "gt", value = 500 }]\n'
    '[[actions]]\ntype = "slack.post"\nwebhook_url = "${SLACK_WEBHOOK_URL}"\n'
    'text = "Order {{ records.order.number }}: {{ records.order.total|money }}"\n'
)
SHOP = Source("shop", "shopify", ())


@pytest.fixture
def rig(engine: Engine, tmp_path: Path) -> Iterator[Rig]:
    yield Rig(engine, tmp_path / "rules", FakeClock(utcnow()))


def shop_with_secret() -> Source:
    from pydantic import SecretStr

    return Source("shop", "shopify", (SecretStr("s3cret"),))


def test_a_sample_that_matches_shows_every_test_and_the_rendered_action(rig: Rig) -> None:
    """The Shopify sample at $750: each test held, the Slack text rendered, the webhook URL not shown."""
    rig.write("big-orders", BIG)
    event = trial.sample_event(shop_with_secret(), [("total_price", "750.00")], utcnow().timestamp())
    result = trial.try_rule(rig.rules().rules[0], event)
    assert result["matched"] is True
    assert result["explain"][0] == "✓ rule big-orders"
    assert "    ✓ records.order.total.amount gt 500  (found 750.00)" in result["explain"]
    [action] = result["actions"]
    assert action["type"] == "slack.post" and action["params"]["text"].endswith(": 750.00 USD")
    assert "webhook_url" not in action["params"] and ENV["SLACK_WEBHOOK_URL"] not in json.dumps(result)


def test_a_sample_that_does_not_match_says_which_test_failed(rig: Rig) -> None:
    """The sample as it is ($199.65): the amount test fails with the value found, no actions."""
    rig.write("big-orders", BIG)
    event = trial.sample_event(shop_with_secret(), [], utcnow().timestamp())
    result = trial.try_rule(rig.rules().rules[0], event)
    assert result["matched"] is False and result["actions"] == []
    assert "    ✗ records.order.total.amount gt 500  (found 199.65)" in result["explain"]


def test_simulate_selects_what_live_evaluation_recorded_and_writes_nothing(rig: Rig) -> None:
    """200 processed orders with random totals under a throttled rule: simulate matches exactly the
    events that got runs, predicts the same number throttled, and leaves the tables as they were."""
    rig.write(
        "big",
        BIG.replace('"big-orders"', '"big"').replace("value = 500", "value = 50")
        + '[throttle]\nkey = "{{ records.order.currency }}"\nper = "1h"\nmax = 30\n',
    )
    rng = random.Random(7)
    for i in range(200):
        total = f"{rng.randint(1, 100)}.00"
        rig.clock.advance(20)
        rig.process({**ORDER, "id": i, "total_price": total}, received_at=rig.clock.now)
    with rig.engine.connect() as conn:
        live = {r.event_id for r in conn.execute(select(action_runs.c.event_id))}
        throttled = conn.execute(
            select(func.count()).select_from(action_runs).where(action_runs.c.state == "throttled")
        ).scalar_one()
        before = [
            conn.execute(select(func.count()).select_from(t)).scalar_one() for t in (action_runs, rule_gates)
        ]
    result = trial.simulate(
        rig.engine, rig.rules().get("big"), since=rig.clock.now - timedelta(days=1), sample=1000, batch=37
    )
    assert {s["event_id"] for s in result["sample"]} == live
    assert (result["scanned"], result["matched"], result["throttled"]) == (200, len(live), throttled)
    assert result["would_fire"] == len(live) - throttled
    with rig.engine.connect() as conn:
        after = [
            conn.execute(select(func.count()).select_from(t)).scalar_one() for t in (action_runs, rule_gates)
        ]
        assert conn.execute(select(func.count()).select_from(event_tags)).scalar_one() == 0
    assert after == before


SOURCES = 'rules_dir = "rules"\n\n[sources.shop]\nconnector = "shopify"\nsecrets = ["${SHOP_SECRET}"]\n'


def hookyard(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "COLUMNS": "100", "SHOP_SECRET": "s3cret", **ENV},
    )


def test_cli_test_simulate_and_list_counts(tmp_path: Path) -> None:
    """`rules test --sample` prints the tests and the action; `--event FILE` reads an event file;
    `simulate` and `list` read the database; an unknown rule or event exits 2."""
    (tmp_path / "hookyard.toml").write_text(SOURCES)
    write(tmp_path / "rules", "big-orders.toml", BIG)
    assert hookyard(tmp_path, "migrate").returncode == 0
    shown = hookyard(tmp_path, "rules", "test", "big-orders", "--sample", "shop", "--set", "total_price=750")
    assert shown.returncode == 0, shown.stderr
    assert "✓ records.order.total.amount gt 500  (found 750)" in shown.stdout
    assert "slack.post" in shown.stdout and ": 750 USD" in shown.stdout
    assert ENV["SLACK_WEBHOOK_URL"] not in shown.stdout
    event_file = tmp_path / "event.json"
    event_file.write_text(
        json.dumps(
            {
                "source": "shop",
                "vendor": "shopify",
                "type": "order.created",
                "payload": {**ORDER, "total_price": "900.00", "currency": "USD"},
            }
        )
    )
    from_file = json.loads(
        hookyard(tmp_path, "rules", "test", "big-orders", "--event", str(event_file), "--json").stdout
    )
    assert from_file["matched"] is True and from_file["actions"][0]["params"]["text"] == "Order : 900.00 USD"
    simulated = hookyard(tmp_path, "rules", "simulate", "big-orders", "--since", "7d", "--json")
    assert simulated.returncode == 0, simulated.stderr
    assert json.loads(simulated.stdout)["scanned"] == 0
    listed = json.loads(hookyard(tmp_path, "rules", "list", "--json").stdout)
    assert listed[0]["counts"] == {
        "matched": 0,
        "fired": 0,
        "failed": 0,
        "throttled": 0,
        "shadow": 0,
        "pending": 0,
    }
    missing = hookyard(tmp_path, "rules", "test", "big-ordrs", "--sample", "shop")
    assert missing.returncode == 2 and "no rule 'big-ordrs'; rules: big-orders" in missing.stderr
    neither = hookyard(tmp_path, "rules", "test", "big-orders", "--event", "no-such-id")
    assert neither.returncode == 2 and "neither a file nor a stored event" in neither.stderr
