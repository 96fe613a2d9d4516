"""The entry-point registry finds every built-in connector under the name sources use."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import ConfigDict

import connectors.stripe
from connectors import registry
from connectors.base import JSON, JSON_OR_FORM, Connector, ConnectorSpec, Options, WindowOptions
from schemas.errors import ConfigError
from schemas.retry import RetryPolicy

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


def test_built_ins_declare_their_capabilities_through_the_spec() -> None:
    """The registry answers typed specs: every Options model refuses unknown keys, a vendor that signs
    a timestamp takes tolerance_s, only Meta answers a GET handshake, form bodies only where vendors
    send them."""
    specs = {name: registry.get(name) for name in BUILT_IN}
    assert all(isinstance(spec, ConnectorSpec) for spec in specs.values())
    assert all(spec.options_model.model_config["extra"] == "forbid" for spec in specs.values())
    timestamped = {name for name, spec in specs.items() if spec.timestamped}
    assert timestamped == {"chatwoot", "klaviyo", "slack", "standard-webhooks", "stripe", "zendesk"}
    assert all(issubclass(specs[name].options_model, WindowOptions) for name in timestamped)
    assert {name for name, spec in specs.items() if spec.handshake is not None} == {"meta"}
    assert {name for name, spec in specs.items() if spec.content_types == JSON_OR_FORM} == {
        "github",
        "slack",
        "zendesk",
    }


def _minimal(**declared: object) -> SimpleNamespace:
    """A connector object with the four required functions and whatever else is declared."""
    return SimpleNamespace(
        **{"name": "tiny", "verify": len, "parse": len, "normalize": len, "sample": len, **declared}
    )


def test_undeclared_capabilities_take_their_defaults() -> None:
    """Nothing declared: JSON only, no signer, no handshake, the default retry policy, no options."""
    spec = ConnectorSpec.of(_minimal())
    assert (spec.content_types, spec.timestamped, spec.sign, spec.handshake) == (JSON, None, None, None)
    assert spec.retry_policy == RetryPolicy()
    assert spec.options_model is Options
    with pytest.raises(ConfigError, match="x.anything: not an option of connector tiny"):
        spec.load_options({"anything": 1}, "x")


class _Lax(Options):
    model_config = ConfigDict(extra="allow", frozen=True)


@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        ({"content_types": "application/json"}, "content_types must be a tuple of media types"),
        ({"content_types": ()}, "content_types must be a tuple of media types"),
        ({"content_types": ("json",)}, "content_types must be a tuple of media types"),
        ({"timestamped": "yes"}, "timestamped must be True, False or None"),
        ({"sign": "sign"}, "sign must be a function"),
        ({"handshake": 1}, "handshake must be a function"),
        ({"retry_policy": {"max_attempts": 3}}, "retry_policy must be a schemas.retry.RetryPolicy"),
        ({"Options": dict}, "Options must be a subclass of connectors.base.Options"),
        ({"Options": _Lax}, "Options must refuse unknown keys"),
        ({"verify": None}, "verify is missing or not a function"),
    ],
)
def test_a_wrong_declaration_is_a_config_error_naming_the_connector(declared: dict, problem: str) -> None:
    """A capability of the wrong type stops loading with one ConfigError naming connector and attribute."""
    with pytest.raises(ConfigError) as info:
        ConnectorSpec.of(_minimal(**declared))
    assert str(info.value).startswith("connector 'tiny': ")
    assert problem in str(info.value)


def test_entry_point_and_connector_names_must_agree() -> None:
    """An entry point registering stripe's package under another name is refused when it loads."""
    with pytest.raises(ConfigError, match="'payments' from connectors.stripe calls itself 'stripe'"):
        registry.checked_spec("payments", connectors.stripe, "connectors.stripe")
