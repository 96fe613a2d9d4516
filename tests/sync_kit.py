"""Builders shared by the sync tests: a source per fake vendor, its client, the engine's deps, and the
fake's truth as record keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, select

from connectors import registry
from connectors.http import VendorClient
from connectors.streams import Reader
from events.db import records, sync_runs
from events.sources import Source, load_sources
from tests.fakes.process import InProcessFake
from workers import syncing

NOW = 1_700_000_040  # the fakes' frozen clock (a minute boundary)

# vendor → (token, api block extras, streams)
VENDORS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "shopify": ("shpat_fake", "", ("orders", "customers")),
    "stripe": ("sk_test_fake", "", ("events",)),
    "zendesk": ("zd_fake", 'user = "agent@example.com"\n', ("tickets",)),
    "klaviyo": ("pk_fake", "", ("events", "profiles")),
    "chatwoot": ("cw_fake", 'account = "1"\n', ("conversations", "messages")),
    "ga4": ("ya29.fake", 'account = "123456"\n', ("report",)),
}
# the fake's collection behind each stream, and the record kind it lands as
COLLECTIONS = {
    ("shopify", "orders"): ("orders", "order"),
    ("shopify", "customers"): ("customers", "customer"),
    ("zendesk", "tickets"): ("tickets", "ticket"),
    ("klaviyo", "events"): ("events", "marketing_event"),
    ("klaviyo", "profiles"): ("profiles", "profile"),
    ("chatwoot", "conversations"): ("conversations", "conversation"),
    ("chatwoot", "messages"): ("messages", "message"),
}


def source_text(vendor: str, url: str, *, name: str = "src", api: str = "", sync: str = "") -> str:
    token, extra, _ = VENDORS[vendor]
    secrets = "" if vendor == "ga4" else 'secrets = ["whsec_dGVzdA=="]\n'
    text = f'[sources.{name}]\nconnector = "{vendor}"\n{secrets}'
    text += f'[sources.{name}.api]\nbase_url = "{url}"\ntoken = "{token}"\n{extra}{api}'
    return text + (f"[sources.{name}.sync]\n{sync}" if sync else "")


def load(tmp_path: Path, text: str) -> dict[str, Source]:
    path = tmp_path / "hookyard.toml"
    path.write_text(text)
    return load_sources(path, None)


def client(source: Source, http: httpx.Client) -> VendorClient:
    """The source's client on a fake, no budget, no breaker, retries without sleeping."""
    access = source.api.access
    api = registry.get(source.connector).api
    assert access is not None and api is not None
    return VendorClient(
        source.connector,
        source.name,
        access.base_url,
        headers=api.headers(access.token.get_secret_value(), access.user),
        hooks=api.hooks,
        http=http,
        sleep=lambda _: None,
    )


def reader(fake: InProcessFake, vendor: str, tmp_path: Path, api: str = "") -> Reader:
    source = load(tmp_path, source_text(vendor, fake.url, api=api))["src"]
    return syncing.reader_for(source, client(source, fake.client()))


def deps(fake: InProcessFake, sources: dict[str, Source], **overrides: Any) -> syncing.Deps:
    http = fake.client()
    return syncing.Deps(sources=sources, client_for=lambda s: client(s, http), **overrides)


def truth(fake: Any, collection: str) -> dict[str, str]:
    """The fake's live records: external id (as webhooks and syncs key them) → its update time."""
    keys = {}
    for row in fake.control.objects(collection):
        if row["deleted"]:
            continue
        public = str(row["id"])
        keys[public.rsplit("/", 1)[-1]] = row["updated"]
    return keys


def stored(engine: Engine, vendor: str, kind: str) -> dict[str, Any]:
    """The records table: external id → (updated_at, version)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(records.c.external_id, records.c.updated_at, records.c.version).where(
                records.c.vendor == vendor, records.c.kind == kind
            )
        )
        return {r.external_id: (r.updated_at, r.version) for r in rows}


def runs(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(sync_runs).order_by(sync_runs.c.started_at)))
