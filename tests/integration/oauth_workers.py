"""Child processes for the OAuth refresh tests (spawned: each its own engine, pool and HTTP client)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from connectors.http import VendorClient, make_http_client
from events.connections import box_for
from events.db import make_engine
from events.refresh import ConnectionTokens, auth_for
from events.settings import OAuthSettings, Settings
from events.sources import load_sources


def settings(config: str, **oauth: Any) -> Settings:
    """The stack's settings: its sources file and, beside it, its secrets file."""
    path = Path(config)
    return Settings(config=path, secrets_file=path.parent / "secrets.env", oauth=OAuthSettings(**oauth))


def calls(database_url: str, config: str, provider_url: str, threads: int, start: Any, results: Any) -> None:
    """Wait for every process, then call the provider's API from `threads` threads at once; put each
    answer's status (or the error's class) on `results`."""
    conf = settings(config)
    source = load_sources(conf.config, conf.secrets_file)["helpdesk"]
    engine = make_engine(database_url)
    http = make_http_client()
    auth = auth_for(engine, source, box_for(conf), conf.oauth, http=http)
    ready = threading.Barrier(threads)

    def one() -> None:
        client = VendorClient("zendesk", "helpdesk", provider_url, auth=auth, http=http)
        ready.wait()
        try:
            results.put(client.call("GET", "/api/me").status)
        except Exception as exc:
            results.put(type(exc).__name__)

    start.wait()
    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def refresh_forever(database_url: str, config: str, lease_s: float) -> None:
    """Ask for a token (expired: a refresh) — the test kills this process while the provider holds it."""
    conf = settings(config, refresh_lease_s=lease_s, http_timeout_s=30.0)
    source = load_sources(conf.config, conf.secrets_file)["helpdesk"]
    ConnectionTokens(
        make_engine(database_url), source, box_for(conf), conf.oauth, http=make_http_client()
    ).token()
