"""Fake vendor APIs that behave like the documented ones, for testing API clients (README.md)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.base import Fake

VENDORS = ("shopify", "stripe", "zendesk", "klaviyo", "chatwoot", "ga4", "slack", "oauth")


def build(vendor: str, config: dict[str, Any] | None = None) -> Fake:
    """A fake vendor API in this process (its ASGI app is `.app()`); ConfigError on a bad config."""
    if vendor not in VENDORS:
        raise ValueError(f"unknown vendor {vendor!r}; one of {', '.join(VENDORS)}")
    fake: type[Fake] = importlib.import_module(f"tests.fakes.{vendor}").FAKE
    return fake(config)
