"""`[sources.X.api]` and `[sources.X.sync]`: validated when the file loads, one readable line each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connectors.budget import Limit
from events.sources import load_sources
from schemas.errors import ConfigError

GH = '[sources.gh]\nconnector = "github"\nsecrets = ["x"]\n'
CW = '[sources.cw]\nconnector = "chatwoot"\nsecrets = ["x"]\n'
GA = '[sources.ga]\nconnector = "ga4"\nsecrets = ["x"]\n'
SHOP = '[sources.shop]\nconnector = "shopify"\nsecrets = ["x"]\n'
API = '[sources.shop.api]\nbase_url = "https://acme.myshopify.com/"\ntoken = "${SHOP_TOKEN}"\n'


def load(tmp_path: Path, text: str) -> dict:
    path = tmp_path / "hookyard.toml"
    path.write_text(text)
    return load_sources(path, None)


def test_api_and_schedule_load_with_the_token_secret_and_limits_overridden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token reads ${VAR} and never shows; an override replaces the default limit of its name and
    keeps its reserve; intervals are seconds."""
    monkeypatch.setenv("SHOP_TOKEN", "shpat_secret")
    text = SHOP + API + "limits = { points = { capacity = 2000, restore_per_s = 100 } }\n"
    text += '[sources.shop.sync]\norders = "5m"\ncustomers = "1h"\n'
    shop = load(tmp_path, text)["shop"]
    access = shop.api.access
    assert access.base_url == "https://acme.myshopify.com"
    assert access.token.get_secret_value() == "shpat_secret" and "shpat_secret" not in repr(shop)
    points, rest = access.limits
    assert points == Limit.bucket("points", 2000, 100, reserve=100) and rest.name == "rest"
    assert shop.sync == {"orders": 300.0, "customers": 3600.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            SHOP + API + '[sources.shop.sync]\nordrs = "5m"\n',
            "sources.shop.sync.ordrs: not a stream of shopify",
        ),
        (SHOP + API + '[sources.shop.sync]\norders = "often"\n', "sources.shop.sync.orders: duration"),
        (SHOP + API + "[sources.shop.sync]\norders = 5\n", "sources.shop.sync.orders: an interval is text"),
        (SHOP + API + '[sources.shop.sync]\norders = "0s"\n', "sources.shop.sync.orders: the interval"),
        (SHOP + API.replace("https://acme.myshopify.com/", "not a url"), "sources.shop.api.base_url"),
        (SHOP + API + "page_size = 0\n", "sources.shop.api.page_size"),
        (SHOP + API + "colour = 1\n", "sources.shop.api.colour"),
        (
            SHOP + API + "limits = { nope = { count = 1, period_s = 1 } }\n",
            "sources.shop.api.limits.nope: not a limit",
        ),
        (SHOP + API + "limits = { points = { count = 1 } }\n", "sources.shop.api.limits.points"),
        (SHOP + '[sources.shop.sync]\norders = "5m"\n', "sources.shop.api: a sync needs the vendor API"),
        (SHOP + '[sources.shop.api]\ntoken = "t"\n', "sources.shop.api.base_url: base_url and token go"),
        (SHOP + "[sources.shop.api]\npage_size = 5\n", "sources.shop.api.page_size: it needs base_url"),
        (SHOP + API.replace("${SHOP_TOKEN}", "${UNSET_TOKEN_X}"), "sources.shop.api.token: ${UNSET_TOKEN_X}"),
        (
            GH + '[sources.gh.api]\nbase_url = "https://x.test"\ntoken = "t"\n',
            "sources.gh.api: connector github has no pull API",
        ),
        (
            CW + '[sources.cw.api]\nbase_url = "https://x.test"\ntoken = "t"\n',
            "sources.cw.api.account: required for chatwoot",
        ),
        ('[sources.ga]\nconnector = "ga4"\n', "sources.ga.api: ga4 is pull-only: it needs"),
        (
            GA + '[sources.ga.api]\nbase_url = "https://x.test"\ntoken = "t"\naccount = "1"\n',
            "sources.ga.secrets: ga4 sends no webhooks",
        ),
    ],
)
def test_a_mistake_is_one_line_naming_file_source_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    """Every mistake in an API or sync block stops the load with the file, the source and the field."""
    monkeypatch.setenv("SHOP_TOKEN", "shpat_secret")
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert message in str(info.value) and str(tmp_path) in str(info.value)
    assert "shpat_secret" not in str(info.value)


def test_a_pull_only_source_takes_no_secrets(tmp_path: Path) -> None:
    """GA4 sends no webhooks: its source has an API and a schedule, and no secrets."""
    text = '[sources.ga]\nconnector = "ga4"\n[sources.ga.api]\nbase_url = "https://analyticsdata.googleapis.com"\n'
    text += 'token = "ya29.x"\naccount = "123456"\n[sources.ga.sync]\nreport = "1d"\n'
    source = load(tmp_path, text)["ga"]
    assert (source.secrets, source.sync, source.api.access.account) == ((), {"report": 86400.0}, "123456")


def test_a_bad_stream_stops_the_worker_with_exit_2(tmp_path: Path) -> None:
    """The worker refuses to start on a bad sync block: exit code 2, one line, no traceback."""
    (tmp_path / "hookyard.toml").write_text(
        SHOP + API.replace("${SHOP_TOKEN}", "t") + '[sources.shop.sync]\nordrs = "5m"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "ops.cli", "worker"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 2 and "sources.shop.sync.ordrs" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
