"""Secrets never show: not in a repr, a log line, an error message, a dead letter or an API answer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from starlette.applications import Starlette
from starlette.routing import Mount
from structlog.testing import capture_logs

from events.db import attempts, dead_letters, source_flags
from events.settings import Settings
from events.sources import Forward, Retry, Source, load_sources
from ops.api import create_api
from schemas.errors import ConfigError
from tests.unit.test_api import Client, record_publish, token
from tests.unit.test_ingress import SECRET as INGRESS_SECRET
from tests.unit.test_ingress import Client as IngressClient
from tests.unit.test_ingress import run_ingress, sample
from tests.unit.test_processing import ORDER, add_event
from workers import processing
from workers.processing import Outcome

APP_SECRET = "whsec_app-7f3a9c"
VERIFY_TOKEN = "verify-2b8e41"
URL_PASSWORD = "urlpass-5d0c77"
URL_PATH = "T0PATH-9e1f"  # a Slack-style webhook URL: the path is the credential
URL_TOKEN = "qtoken-46ab02"
HEADER_TOKEN = "hdr-c81d55"
DB_PASSWORD = "dbpass-0a9b3e"
BROKER_PASSWORD = "mqpass-77e1d4"
SECRETS = (
    APP_SECRET,
    VERIFY_TOKEN,
    URL_PASSWORD,
    URL_PATH,
    URL_TOKEN,
    HEADER_TOKEN,
    DB_PASSWORD,
    BROKER_PASSWORD,
)
DOWN_URL = f"https://user:{URL_PASSWORD}@down.test/hooks/{URL_PATH}?token={URL_TOKEN}"


def assert_no_secret(text: str) -> None:
    """None of the secrets above appears in `text`."""
    assert [secret for secret in SECRETS if secret in text] == []


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The secrets reach the sources file through ${VAR}s, as they would in production."""
    for name, value in {
        "APP": APP_SECRET,
        "TOKEN": VERIFY_TOKEN,
        "DOWN_URL": DOWN_URL,
        "DOWN_TOKEN": HEADER_TOKEN,
    }.items():
        monkeypatch.setenv(name, value)


CONFIG = """
[sources.fb]
connector = "meta"
secrets = ["${APP}"]
options = { verify_token = "${TOKEN}" }

[sources.fb.forward]
url = "${DOWN_URL}"
headers = { Authorization = "Bearer ${DOWN_TOKEN}" }
"""


def test_reprs_of_sources_and_settings_show_no_secret(tmp_path: Path, env: None) -> None:
    """Sources (secrets, verify_token, forward URL and headers) and settings (database and broker URLs)
    print masked; the code that needs a value still reads it."""
    path = tmp_path / "hookyard.toml"
    path.write_text(CONFIG)
    sources = load_sources(path, None)
    settings = Settings(
        database_url=f"postgresql://app:{DB_PASSWORD}@db/hookyard",
        broker_url=f"redis://:{BROKER_PASSWORD}@mq:6379/0",
    )
    forward = sources["fb"].forward
    assert forward is not None
    for shown in (repr(sources), str(sources), repr(settings), str(settings), settings.model_dump_json()):
        assert_no_secret(shown)
    assert_no_secret(forward.safe_url)
    assert sources["fb"].secret_values() == [APP_SECRET]
    assert forward.url.get_secret_value() == DOWN_URL
    assert forward.headers["Authorization"].get_secret_value() == f"Bearer {HEADER_TOKEN}"
    assert settings.database_url.get_secret_value() == f"postgresql://app:{DB_PASSWORD}@db/hookyard"


@pytest.mark.parametrize(
    ("config", "env_value"),
    [
        ('secrets = ["${APP}"]\n[sources.s.forward]\nurl = "${X}"\n', f"down.test/{URL_TOKEN}"),
        ('secrets = ["${APP}"]\n[sources.s.forward]\nurl = "${X}"\n', f"ftp://u:{URL_PASSWORD}@down.test/"),
        (
            'secrets = ["${APP}"]\n[sources.s.forward]\nurl = "https://down.test/"\n'
            'headers = { Authorization = "${X}\\r\\nX-Other: 1" }\n',
            HEADER_TOKEN,
        ),
        ('secrets = ["${APP}"]\noptions = { tolerance_s = "${X}" }\n', VERIFY_TOKEN),
        ('secrets = ["${APP}", ""]\n', APP_SECRET),
        (f'secrets = ["{APP_SECRET}]\n', APP_SECRET),
        (f'secrets = "{APP_SECRET}"\n', APP_SECRET),
    ],
)
def test_config_errors_never_quote_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str, env_value: str
) -> None:
    """A refused value that holds a secret is named by its field, never quoted."""
    monkeypatch.setenv("APP", APP_SECRET)
    monkeypatch.setenv("X", env_value)
    path = tmp_path / "hookyard.toml"
    path.write_text(f'[sources.s]\nconnector = "stripe"\n{config}')
    with pytest.raises(ConfigError) as info:
        load_sources(path, None)
    assert "sources.s" in str(info.value) or "TOML" in str(info.value)
    assert_no_secret(str(info.value))


def _forwarding(handler: Any) -> processing.Context:
    forward = Forward(url=DOWN_URL, headers={"Authorization": f"Bearer {HEADER_TOKEN}"})
    source = Source("shop", "shopify", (APP_SECRET,), forward=forward, retry=Retry(max_attempts=2))
    return processing.Context(
        sources={"shop": source}, lease_s=30, http=httpx.Client(transport=httpx.MockTransport(handler))
    )


def test_forward_failures_show_no_secret_in_logs_rows_or_the_api(engine: Engine) -> None:
    """A downstream that refuses us (401) and one that cannot be reached: the log lines, the recorded
    attempts, the dead letter and the flag /v1/sources shows name the target by its host alone."""
    sent: list[httpx.URL] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        sent.append(request.url)
        return httpx.Response(401, text="bad credentials")

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("All connection attempts failed", request=request)

    refused, lost = add_event(engine, ORDER), add_event(engine, ORDER)
    with capture_logs() as logs:
        assert processing.process(engine, refused, _forwarding(refuse)) == Outcome.DEAD
        assert processing.process(engine, lost, _forwarding(unreachable)) == Outcome.RETRY
    [url] = sent  # the secrets go where they belong, and nowhere else
    assert (url.path, url.params["token"]) == (f"/hooks/{URL_PATH}", URL_TOKEN)
    with engine.connect() as conn:
        rows = [
            *conn.execute(select(attempts.c.error_message)),
            *conn.execute(select(dead_letters.c.error_message, dead_letters.c.traceback)),
            *conn.execute(select(source_flags.c.reason)),
        ]
    api = Client(Starlette(routes=[Mount("/v1", app=create_api(engine, {}, publish=record_publish))]))
    answer = api.get("/v1/sources", headers=token(engine, "read"))
    assert answer.status_code == 200
    assert_no_secret(repr(logs))
    assert_no_secret(repr(rows))
    assert_no_secret(answer.text)
    assert any("https://down.test/…" in str(row) for row in rows)


def test_ingress_logs_show_no_secret(tmp_path: Path) -> None:
    """Accepted and refused deliveries log their outcome, never the source's secret."""
    request = sample()

    async def scenario(client: IngressClient, published: list[tuple[str, str]]) -> list[int]:
        good = await client.post("/webhooks/shop", content=request.body, headers=request.headers)
        forged = await client.post("/webhooks/shop", content=request.body + b" ", headers=request.headers)
        await asyncio.sleep(0.05)
        return [good.status_code, forged.status_code]

    with capture_logs() as logs:
        assert run_ingress(tmp_path, scenario) == [200, 401]
    assert "ingress.rejected" in [entry["event"] for entry in logs]
    assert INGRESS_SECRET not in repr(logs)
