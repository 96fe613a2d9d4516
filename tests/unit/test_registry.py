"""The entry-point registry finds every built-in connector under the name sources use."""

from __future__ import annotations

from connectors import registry
from connectors.base import Connector

BUILT_IN = [
    "chatwoot",
    "generic-hmac",
    "github",
    "klaviyo",
    "meta",
    "shopify",
    "slack",
    "standard-webhooks",
    "stripe",
    "zendesk",
]


def test_every_built_in_connector_is_registered_under_its_name() -> None:
    """Each entry point loads a Connector whose name is the entry point's name, from hookyard."""
    assert set(BUILT_IN) <= set(registry.names())
    for name in BUILT_IN:
        connector = registry.get(name)
        assert isinstance(connector, Connector)
        assert connector.name == name
        assert registry.origin(name) == "hookyard"
