"""The Acme connector passes Hookyard's certification kit and maps invoice.paid to a Payment."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from acme_hooks import connector
from pydantic import ValidationError

from connectors.certify import certify
from schemas.envelope import Envelope
from schemas.records import Payment

SECRET = "acme_test_secret_0123456789abcdef"
NOW = 1_700_000_000


def test_certified() -> None:
    """Every check of the kit passes: signatures, tampering, rotation, fail closed, window, fuzzing."""
    certify(connector, secret=SECRET)


def test_invoice_paid_is_a_payment() -> None:
    """The sample's invoice.paid becomes payment.succeeded and one Payment of 42.50 EUR."""
    request = connector.sample(SECRET, NOW)
    headers = {k.lower(): v for k, v in request.headers.items()}
    options = connector.Options()  # a source that sets no options
    connector.verify(request.body, headers, [SECRET], NOW, options)
    [delivery] = connector.parse(request.body, headers, options).deliveries
    assert delivery.dedupe_key == headers["x-acme-delivery"]
    assert delivery.type == "payment.succeeded"
    envelope = Envelope(
        id=str(uuid.uuid4()),
        source="billing",
        vendor="acme",
        type=delivery.type,
        dedupe_key=delivery.dedupe_key,
        received_at=datetime.now(UTC),
        payload=delivery.payload,
    )
    [payment] = connector.normalize(envelope)
    assert isinstance(payment, Payment)
    assert (payment.amount.amount, payment.amount.currency) == (Decimal("42.50"), "EUR")


def test_other_events_keep_their_acme_type() -> None:
    """An event Hookyard has no canonical name for is stored as acme.<type>, with no records."""
    body = b'{"type": "invoice.created", "data": {"id": "inv_1"}}'
    [delivery] = connector.parse(body, {"x-acme-delivery": "d-1"}, connector.Options()).deliveries
    assert delivery.type == "acme.invoice.created"
    renamed = connector.Options(type_prefix="billing")
    assert (
        connector.parse(body, {"x-acme-delivery": "d-1"}, renamed).deliveries[0].type
        == "billing.invoice.created"
    )


def test_options_are_checked() -> None:
    """An unknown option or a window out of bounds is refused, as Hookyard refuses it at start."""
    with pytest.raises(ValidationError):
        connector.Options(tolerance_s=0)
    with pytest.raises(ValidationError):
        connector.Options(tolerence_s=300)
