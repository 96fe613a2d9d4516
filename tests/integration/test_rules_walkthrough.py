"""The README's rules walk-through, as written, in `hookyard dev` against the fake Slack as a process:
write the rule, test it on a sample, simulate it on stored orders, enable it, one message per order."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.fakes.process import RunningFake
from tests.integration.actions_kit import HOOK_PATH
from tests.integration.harness import free_port, start_dev, wait_for
from tests.integration.test_dev_walkthrough import hookyard

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "rules" / "big-orders.toml"


def test_big_orders_post_to_slack_once_each_after_test_simulate_and_enable(
    tmp_path: Path, fake_vendor: Callable[..., RunningFake]
) -> None:
    """Two orders stored before the rule, then the README's lines: the dry run renders the message,
    the simulation finds the one big stored order, nothing is posted until the flag is on, and then
    each of two big orders is posted exactly once."""
    slack = fake_vendor("slack")  # the README starts it on port 9200
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_")}
    dev = start_dev(tmp_path, port, env)
    try:
        wait_for(lambda: httpx.get(f"{url}/healthz", timeout=1).status_code == 200, timeout=60, what="dev")
        assert (tmp_path / "hookyard.toml").read_text().count('rules_dir = "rules"') == 1
        for total in ("900", "100"):  # last week's orders
            hookyard(tmp_path, "send", "shop", "--sample", "--url", url, "--set", f"total_price={total}")
        states = lambda: [e["state"] for e in hookyard(tmp_path, "events", "list")]  # noqa: E731
        wait_for(lambda: states() == ["done", "done"], timeout=60, what="the stored orders processed")

        with (tmp_path / ".hookyard" / "secrets.env").open("a") as secrets:
            secrets.write(f"SLACK_WEBHOOK_URL={slack.url}{HOOK_PATH}\n")
        shutil.copy(EXAMPLE, tmp_path / "rules")
        tested = hookyard(
            tmp_path, "rules", "test", "big-orders", "--sample", "shop", "--set", "total_price=750"
        )
        assert tested["matched"] is True and tested["enabled"] is False
        [action] = tested["actions"]
        assert action["type"] == "slack.post" and ": 750 USD from jon@example.com" in action["params"]["text"]
        simulated = hookyard(tmp_path, "rules", "simulate", "big-orders", "--since", "7d")
        assert (simulated["scanned"], simulated["matched"], simulated["would_fire"]) == (2, 1, 1)
        assert hookyard(tmp_path, "flags", "set", "rule", "big-orders", "on")["enabled"] is True
        assert slack.control.posts() == []  # trying the rule posted nothing

        sent = hookyard(
            tmp_path, "send", "shop", "--sample", "--url", url, "--set", "total_price=750", "--count", "2"
        )
        assert [s["response"]["accepted"] for s in sent] == [1, 1]
        texts = lambda: [p["text"] for p in slack.control.posts()]  # noqa: E731
        wait_for(lambda: len(texts()) == 2, timeout=60, what="two messages")
        assert all(
            t.startswith("New order #") and t.endswith(": 750 USD from jon@example.com") for t in texts()
        )
        assert len(set(texts())) == 2  # one message per order, each order once
        counts = lambda: hookyard(tmp_path, "rules", "list")[0]["counts"]  # noqa: E731
        wait_for(lambda: (counts()["matched"], counts()["fired"]) == (2, 2), timeout=30, what="2 fired")
        assert len(slack.control.posts()) == 2
        dev.popen.terminate()
        assert dev.popen.wait(timeout=60) == 0
    finally:
        dev.stop()
