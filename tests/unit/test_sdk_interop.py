"""Round trips against the vendors' own signing helpers: what they sign we verify, and vice versa."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from connectors import registry
from connectors.base import SignedRequest
from schemas.errors import VerificationError
from tests.helpers import verify

stripe = pytest.importorskip("stripe")
standardwebhooks = pytest.importorskip("standardwebhooks")
svix = pytest.importorskip("svix.webhooks")
slack_signature = pytest.importorskip("slack_sdk.signature")

STRIPE_SECRET = "whsec_test_secret"
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_stripe_sdk_signature_verifies_here() -> None:
    """A header from stripe-python's generate_signature_header passes our verify."""
    body = registry.get("stripe").sample(STRIPE_SECRET, time.time()).body
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), STRIPE_SECRET, timestamp=1700000000
    )
    verify("stripe", SignedRequest(body, {"Stripe-Signature": header}), [STRIPE_SECRET], 1700000000)


def test_our_stripe_signature_verifies_in_the_sdk() -> None:
    """stripe-python's verify_header and construct_event accept our signed sample."""
    request = registry.get("stripe").sample(STRIPE_SECRET, time.time())
    header = request.headers["Stripe-Signature"]
    assert stripe.WebhookSignature.verify_header(request.body.decode(), header, STRIPE_SECRET, tolerance=300)
    event = stripe.Webhook.construct_event(request.body, header, STRIPE_SECRET)
    assert event.type == "payment_intent.succeeded"


def test_future_stripe_timestamp_passes_the_sdk_but_not_us() -> None:
    """stripe-python accepts a timestamp an hour ahead; we refuse it."""
    request = registry.get("stripe").sample(STRIPE_SECRET, time.time() + 3600)
    header = request.headers["Stripe-Signature"]
    assert stripe.WebhookSignature.verify_header(request.body.decode(), header, STRIPE_SECRET, tolerance=300)
    with pytest.raises(VerificationError, match="future"):
        verify("stripe", request, [STRIPE_SECRET], time.time())


@pytest.mark.parametrize("library", ["standardwebhooks", "svix"])
def test_standard_webhooks_libraries_sign_what_we_verify(library: str) -> None:
    """Signatures from standardwebhooks.Webhook.sign and svix Webhook.sign verify here."""
    webhook = (standardwebhooks.Webhook if library == "standardwebhooks" else svix.Webhook)(SW_SECRET)
    body, when = '{"type": "contact.created", "data": {"id": 1}}', datetime.fromtimestamp(1614265330, UTC)
    signature = webhook.sign("msg_abc", when, body)
    headers = {"webhook-id": "msg_abc", "webhook-timestamp": "1614265330", "webhook-signature": signature}
    verify("standard-webhooks", SignedRequest(body.encode(), headers), [SW_SECRET], 1614265330)


@pytest.mark.parametrize("library", ["standardwebhooks", "svix"])
def test_standard_webhooks_libraries_verify_what_we_sign(library: str) -> None:
    """Our signed sample passes the reference libraries' verify (which read the real clock)."""
    request = registry.get("standard-webhooks").sample(SW_SECRET, time.time())
    webhook = (standardwebhooks.Webhook if library == "standardwebhooks" else svix.Webhook)(SW_SECRET)
    headers = {k.lower(): v for k, v in request.headers.items()}
    if library == "svix":
        headers = {k.replace("webhook-", "svix-"): v for k, v in headers.items()}
    webhook.verify(request.body, headers)
