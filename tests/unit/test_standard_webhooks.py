"""Standard Webhooks / Svix: whsec_ base64 keys, space-separated v1 list, svix-* header twins."""

from __future__ import annotations

import pytest

import connectors.standard_webhooks as connector
from connectors.base import SignedRequest
from schemas.errors import ConfigError, MalformedError, VerificationError
from tests.helpers import parse, verify, with_headers

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = b'{"test": 2432232314}'
SPEC = {
    "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "webhook-timestamp": "1614265330",
    "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}
NOW = 1614265330


def test_svix_headers_are_accepted() -> None:
    """Svix's svix-id/-timestamp/-signature verify exactly like webhook-*."""
    svix = {k.replace("webhook-", "svix-"): v for k, v in SPEC.items()}
    verify("standard-webhooks", SignedRequest(BODY, svix), [SECRET], NOW)
    assert (
        parse("standard-webhooks", SignedRequest(BODY, svix)).deliveries[0].dedupe_key == SPEC["webhook-id"]
    )


def test_secret_without_prefix_or_padding_is_the_same_key() -> None:
    """The base64 part alone, or with its padding, is the same key."""
    verify("standard-webhooks", SignedRequest(BODY, SPEC), ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], NOW)


def test_secret_that_is_not_base64_is_a_config_error() -> None:
    """A whsec_ secret whose body is not base64 is an operator mistake, not a forged request."""
    with pytest.raises(ConfigError):
        verify("standard-webhooks", SignedRequest(BODY, SPEC), ["whsec_not*base64!"], NOW)


def test_signed_content_binds_the_id() -> None:
    """Changing webhook-id (part of the signed content) breaks the signature."""
    request = with_headers(SignedRequest(BODY, SPEC), webhook_id="msg_other")
    with pytest.raises(VerificationError):
        verify("standard-webhooks", request, [SECRET], NOW)


def test_asymmetric_and_malformed_entries_are_ignored() -> None:
    """v1a and entries without a comma are skipped; a valid v1 elsewhere still passes."""
    value = "v1a,AAAA garbage " + SPEC["webhook-signature"]
    verify(
        "standard-webhooks", with_headers(SignedRequest(BODY, SPEC), webhook_signature=value), [SECRET], NOW
    )
    with pytest.raises(VerificationError):
        verify(
            "standard-webhooks",
            with_headers(SignedRequest(BODY, SPEC), webhook_signature="v1a,AAAA"),
            [SECRET],
            NOW,
        )


def test_type_prefix_and_canonical_map_are_per_source() -> None:
    """A source can name its vendor prefix and map event types to canonical ones."""
    body = b'{"type": "invoice.paid", "timestamp": "2022-11-03T20:26:10.344522Z", "data": {"id": "in_1"}}'
    request = connector.sign(body, {"webhook-id": "msg_1"}, SECRET, NOW)
    assert parse("standard-webhooks", request).deliveries[0].type == "standard-webhooks.invoice.paid"
    assert (
        parse("standard-webhooks", request, {"type_prefix": "polar"}).deliveries[0].type
        == "polar.invoice.paid"
    )
    mapped = parse("standard-webhooks", request, {"types": {"invoice.paid": "payment.succeeded"}})
    assert mapped.deliveries[0].type == "payment.succeeded"
    assert mapped.deliveries[0].occurred_at.isoformat() == "2022-11-03T20:26:10.344522+00:00"


@pytest.mark.parametrize("body", [b"[1, 2]", b"42", b'"text"', b"null"])
def test_a_payload_that_is_not_an_object_is_malformed(body: bytes) -> None:
    """The spec's payload is an object (type, timestamp, data); anything else is a 400, not an event."""
    request = connector.sign(body, {"webhook-id": "msg_1"}, SECRET, NOW)
    verify("standard-webhooks", request, [SECRET], NOW)  # validly signed…
    with pytest.raises(MalformedError):  # …and still refused
        parse("standard-webhooks", request)
