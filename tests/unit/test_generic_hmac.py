"""generic-hmac: option validation, dedupe and type locations, and vendors' schemes expressed as options."""

from __future__ import annotations

import orjson
import pytest

import connectors.generic_hmac as connector
from connectors.base import SignedRequest
from schemas.errors import ConfigError, MalformedError, VerificationError
from tests.helpers import NOW, options_for, to_unix, vectors, verify

# Vendors' schemes written as generic-hmac options: each must verify that vendor's documented vector.
AS_OPTIONS = {
    "github": {"header": "X-Hub-Signature-256", "prefix": "sha256="},
    "meta": {"header": "X-Hub-Signature-256", "prefix": "sha256="},
    "shopify": {"header": "X-Shopify-Hmac-Sha256", "encoding": "base64"},
    "slack": {
        "header": "X-Slack-Signature",
        "prefix": "v0=",
        "template": "v0:{timestamp}:{body}",
        "timestamp_header": "X-Slack-Request-Timestamp",
    },
    "chatwoot": {
        "header": "X-Chatwoot-Signature",
        "prefix": "sha256=",
        "template": "{timestamp}.{body}",
        "timestamp_header": "X-Chatwoot-Timestamp",
    },
    "zendesk": {
        "header": "X-Zendesk-Webhook-Signature",
        "encoding": "base64",
        "template": "{timestamp}{body}",
        "timestamp_header": "X-Zendesk-Webhook-Signature-Timestamp",
        "timestamp_format": "iso8601",
    },
    "klaviyo": {
        "header": "Klaviyo-Signature",
        "template": "{body}{timestamp}",
        "timestamp_header": "Klaviyo-Timestamp",
        "timestamp_format": "http-date",
    },
}


@pytest.mark.parametrize(
    "case", [c for c in vectors() if c["vendor"] in AS_OPTIONS], ids=lambda c: f"{c['vendor']}-{c['expect']}"
)
def test_vendor_schemes_expressed_as_options_agree_with_their_vectors(case: dict) -> None:
    """generic-hmac configured like a vendor reaches the same verdict on that vendor's vectors."""
    request = SignedRequest(case["body"].encode(), case["headers"])
    options, now = AS_OPTIONS[case["vendor"]], to_unix(case.get("now"))
    if case["expect"] == "valid":
        verify("generic-hmac", request, [case["secret"]], now, options)
    else:
        with pytest.raises(VerificationError):
            verify("generic-hmac", request, [case["secret"]], now, options)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({}, "options.header"),
        ({"header": ""}, "header name"),
        ({"header": "X-Sig", "algorithm": "md5"}, "algorithm"),
        ({"header": "X-Sig", "encoding": "base32"}, "encoding"),
        ({"header": "X-Sig", "template": "{timestamp}"}, "{body}"),
        ({"header": "X-Sig", "template": "{body}{body}"}, "{body}"),
        ({"header": "X-Sig", "template": "{timestamp}.{body}"}, "no timestamp header"),
        ({"header": "X-Sig", "template": "{id}.{body}"}, "no id header"),
        ({"header": "X-Sig", "timestamp_header": "X-Ts"}, "unsigned timestamp"),
        (
            {
                "header": "X-Sig",
                "timestamp_header": "X-Ts",
                "template": "{timestamp}{body}",
                "timestamp_format": "ms",
            },
            "timestamp format",
        ),
        ({"header": "X-Sig", "prefix": 1}, "options.prefix: Input should be a valid string"),
        ({"header": "X-Sig", "dedupe_pointer": "meta/id"}, "options.dedupe_pointer"),
        ({"header": "X-Sig", "colour": "red"}, "options.colour: not an option of connector generic-hmac"),
        ({"header": "X-Sig", "tolerance_s": 0}, "tolerance_s"),
    ],
)
def test_bad_options_are_config_errors(options: dict, problem: str) -> None:
    """A source whose options cannot describe a sound scheme is a configuration error naming the problem."""
    request = SignedRequest(b"{}", {"X-Sig": "00"})
    with pytest.raises(ConfigError, match=problem.replace("{", r"\{").replace("}", r"\}")):
        verify("generic-hmac", request, ["secret"], NOW, options)


def opts(**table: object) -> connector.Options:
    """generic-hmac options as a source would set them (a signature header is required)."""
    return options_for("generic-hmac", {"header": "X-Sig", **table})


def test_dedupe_from_header_pointer_or_body_hash() -> None:
    """The dedupe key comes from the configured header, else a JSON pointer, else the body hash."""
    body = orjson.dumps({"meta": {"a/b": {"id": "evt_1"}}, "kind": "order.paid"})
    headers = {"x-request-id": "req-9"}
    assert (
        connector.parse(body, headers, opts(dedupe_header="X-Request-Id")).deliveries[0].dedupe_key == "req-9"
    )
    assert connector.parse(body, {}, opts(dedupe_pointer="/meta/a~1b/id")).deliveries[0].dedupe_key == "evt_1"
    assert len(connector.parse(body, {}, opts()).deliveries[0].dedupe_key) == 64
    with pytest.raises(MalformedError):
        connector.parse(body, {}, opts(dedupe_pointer="/missing"))
    with pytest.raises(MalformedError):
        connector.parse(body, {}, opts(dedupe_header="X-Request-Id"))
    with pytest.raises(ConfigError):
        opts(dedupe_pointer="meta/id")


def test_type_from_pointer_fixed_value_and_canonical_map() -> None:
    """Types: <prefix>.<name> from a pointer or a fixed option, or a canonical name from the map."""
    body = orjson.dumps({"kind": "order.paid", "at": "2024-05-01T10:00:00Z"})
    options = {"type_pointer": "/kind", "type_prefix": "acme", "time_pointer": "/at"}
    delivery = connector.parse(body, {}, opts(**options)).deliveries[0]
    assert (
        delivery.type == "acme.order.paid" and delivery.occurred_at.isoformat() == "2024-05-01T10:00:00+00:00"
    )
    assert connector.parse(body, {}, opts(**options, types={"order.paid": "payment.succeeded"})).deliveries[
        0
    ].type == ("payment.succeeded")
    assert connector.parse(body, {}, opts(type="ping")).deliveries[0].type == "generic.ping"


def test_sample_follows_the_options() -> None:
    """The sample is signed per the options and carries its key where the options look for it."""
    options = {
        "header": "X-Sig",
        "algorithm": "sha512",
        "encoding": "base64",
        "template": "{id}|{timestamp}|{body}",
        "id_header": "X-Id",
        "timestamp_header": "X-Ts",
        "dedupe_pointer": "/meta/delivery",
    }
    request = connector.sample("s3cret", NOW, options_for("generic-hmac", options))
    verify("generic-hmac", request, ["s3cret"], NOW, options)
    key = connector.parse(
        request.body, {k.lower(): v for k, v in request.headers.items()}, options_for("generic-hmac", options)
    )
    assert key.deliveries[0].dedupe_key == request.headers["X-Id"]
