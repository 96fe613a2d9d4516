"""Stripe: signature header parsing, the window, dedupe on the event id, minor-unit amounts."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

import connectors.stripe as connector
from connectors.base import SignedRequest
from connectors.stripe.normalize import minor_units
from schemas.envelope import Envelope
from schemas.errors import MalformedError, VerificationError
from schemas.records import Customer, Order, Payment, Refund
from tests.helpers import NOW, parse, verify, with_headers

SECRET = "whsec_test_secret"


def _event(event_type: str, data: dict, event_id: str = "evt_1NG8Du2eZvKYlo2CUI79vXWy") -> dict:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1686089970,
        "livemode": False,
        "type": event_type,
        "data": {"object": data},
    }


def _envelope(event: dict) -> Envelope:
    parsed = connector.parse(orjson.dumps(event), {}, {})
    delivery = parsed.deliveries[0]
    return Envelope(
        id="e1",
        source="stripe-live",
        vendor="stripe",
        type=delivery.type,
        dedupe_key=delivery.dedupe_key,
        received_at=datetime.now(UTC),
        payload=delivery.payload,
    )


def test_sample_round_trips() -> None:
    """A sample verifies, parses to payment.succeeded keyed by the event id, and normalizes to a Payment."""
    request = connector.sample(SECRET, NOW)
    verify("stripe", request, [SECRET], NOW)
    (delivery,) = parse("stripe", request).deliveries
    assert delivery.dedupe_key == orjson.loads(request.body)["id"]
    assert delivery.type == "payment.succeeded"
    assert delivery.occurred_at == datetime.fromtimestamp(NOW - 2, UTC)


def test_any_v1_matches_and_unknown_schemes_are_ignored() -> None:
    """Several v1 signatures (secret roll) pass if one matches; v0 and v2 never count."""
    request = connector.sample(SECRET, NOW)
    good = request.headers["Stripe-Signature"].split(",v1=")[1]
    rolled = with_headers(request, stripe_signature=f"t={NOW},v1={'0' * 64},v1={good},v0=abc,v2=def")
    verify("stripe", rolled, [SECRET], NOW)
    for scheme in ("v0", "v2", "V1"):
        downgraded = with_headers(request, stripe_signature=f"t={NOW},{scheme}={good}")
        with pytest.raises(VerificationError):
            verify("stripe", downgraded, [SECRET], NOW)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "t=",
        f"v1={'a' * 64}",
        f"t=abc,v1={'a' * 64}",
        f"t=-1,v1={'a' * 64}",
        f"t=1_700_000_000,v1={'a' * 64}",
        "garbage",
    ],
)
def test_malformed_signature_headers_are_rejected(value: str) -> None:
    """Headers without a usable t= or v1= are a verification failure, never a crash."""
    request = with_headers(connector.sample(SECRET, NOW), stripe_signature=value)
    with pytest.raises(VerificationError):
        verify("stripe", request, [SECRET], NOW)


def test_tolerance_option_overrides_the_window() -> None:
    """options tolerance_s narrows (or widens) the window both ways."""
    request = connector.sample(SECRET, NOW)
    verify("stripe", request, [SECRET], NOW + 59, {"tolerance_s": 60})
    with pytest.raises(VerificationError, match="older"):
        verify("stripe", request, [SECRET], NOW + 61, {"tolerance_s": 60})
    with pytest.raises(VerificationError, match="future"):
        verify("stripe", request, [SECRET], NOW - 61, {"tolerance_s": 60})


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"object": "event"}', b'{"id": 42}'])
def test_parse_refuses_bodies_without_an_event_id(body: bytes) -> None:
    """A verified body that is not an event with a string id is malformed."""
    with pytest.raises(MalformedError):
        connector.parse(body, {}, {})


def test_unknown_types_keep_the_vendor_prefix() -> None:
    """Types without a canonical name become stripe.<type>."""
    delivery = connector.parse(
        orjson.dumps(_event("invoice.paid", {"object": "invoice"})), {}, {}
    ).deliveries[0]
    assert delivery.type == "stripe.invoice.paid"


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (2000, "usd", Decimal("20.00")),
        (5000, "jpy", Decimal("5000")),
        (1999, "eur", Decimal("19.99")),
        (12340, "kwd", Decimal("12.340")),
        (100000, "huf", Decimal("1000.00")),
        (500, "krw", Decimal("500")),
    ],
)
def test_minor_units_respect_zero_and_three_decimal_currencies(
    amount: int, currency: str, expected: Decimal
) -> None:
    """JPY/KRW amounts are whole units, KWD thousandths, everything else cents."""
    money = minor_units(amount, currency)
    assert money is not None and money.amount == expected and money.currency == currency.upper()


def test_minor_units_refuse_non_integers() -> None:
    """Floats, strings and booleans are not Stripe amounts."""
    assert minor_units(20.5, "usd") is None
    assert minor_units("2000", "usd") is None
    assert minor_units(True, "usd") is None
    assert minor_units(2000, "dollars") is None


def test_payment_intent_succeeded_normalizes_field_by_field() -> None:
    """Stripe's documented PaymentIntent becomes a Payment in major units, UTC times."""
    intent = {
        "id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
        "object": "payment_intent",
        "amount": 2000,
        "amount_received": 2000,
        "currency": "usd",
        "customer": "cus_NffrFeUfNV2Hib",
        "status": "succeeded",
        "created": 1680800504,
        "latest_charge": "ch_3MtwBwLkdIwHu7ix28a3tqPa",
    }
    (payment,) = connector.normalize(_envelope(_event("payment_intent.succeeded", intent)))
    assert payment == Payment(
        external_id="pi_3MtwBwLkdIwHu7ix28a3tqPa",
        amount={"amount": Decimal("20.00"), "currency": "USD"},
        status="succeeded",
        customer_id="cus_NffrFeUfNV2Hib",
        created_at=datetime(2023, 4, 6, 17, 1, 44, tzinfo=UTC),
        updated_at=datetime.fromtimestamp(1686089970, UTC),
    )


def test_yen_payment_is_not_divided_by_100() -> None:
    """A ¥5,000 payment is 5000 JPY, not 50."""
    intent = {
        "id": "pi_jpy",
        "object": "payment_intent",
        "amount": 5000,
        "amount_received": 5000,
        "currency": "jpy",
        "status": "succeeded",
        "created": 1680800504,
    }
    (payment,) = connector.normalize(_envelope(_event("payment_intent.succeeded", intent)))
    assert payment.amount.amount == Decimal(5000) and payment.amount.currency == "JPY"


def test_charge_updates_the_payment_of_its_intent() -> None:
    """A charge event is keyed by its PaymentIntent, so both land on the same Payment."""
    charge = {
        "id": "ch_3MmlLrLkdIwHu7ix0snN0B15",
        "object": "charge",
        "amount": 1099,
        "currency": "usd",
        "payment_intent": "pi_3MmlLrLkdIwHu7ix0uke3Ezy",
        "status": "succeeded",
        "refunded": True,
        "created": 1679090539,
        "customer": None,
    }
    (payment,) = connector.normalize(_envelope(_event("charge.refunded", charge)))
    assert (payment.external_id, payment.status, payment.amount.amount) == (
        "pi_3MmlLrLkdIwHu7ix0uke3Ezy",
        "refunded",
        Decimal("10.99"),
    )


def test_refund_created_normalizes_field_by_field() -> None:
    """Stripe's documented Refund becomes a Refund against its PaymentIntent."""
    refund = {
        "id": "re_1Nispe2eZvKYlo2Cd31jOCgZ",
        "object": "refund",
        "amount": 1000,
        "currency": "usd",
        "charge": "ch_1NirD82eZvKYlo2CIvbtLWuY",
        "payment_intent": "pi_1GszsK2eZvKYlo2CfhZyoZLp",
        "status": "succeeded",
        "created": 1692942318,
    }
    (record,) = connector.normalize(_envelope(_event("refund.created", refund)))
    assert isinstance(record, Refund)
    assert (
        record.external_id,
        record.amount.amount,
        record.amount.currency,
        record.payment_id,
        record.status,
    ) == ("re_1Nispe2eZvKYlo2Cd31jOCgZ", Decimal("10.00"), "USD", "pi_1GszsK2eZvKYlo2CfhZyoZLp", "succeeded")
    assert record.created_at == datetime(2023, 8, 25, 5, 45, 18, tzinfo=UTC)


def test_customer_and_checkout_session_normalize() -> None:
    """customer.created gives a Customer; checkout.session.completed an Order with its total."""
    customer = {
        "id": "cus_NffrFeUfNV2Hib",
        "object": "customer",
        "email": "jennyrosen@example.com",
        "name": "Jenny Rosen",
        "created": 1680893993,
    }
    assert connector.normalize(_envelope(_event("customer.created", customer))) == [
        Customer(
            external_id="cus_NffrFeUfNV2Hib",
            email="jennyrosen@example.com",
            name="Jenny Rosen",
            updated_at=datetime.fromtimestamp(1686089970, UTC),
        )
    ]
    session = {
        "id": "cs_test_a1",
        "object": "checkout.session",
        "amount_total": 2198,
        "currency": "eur",
        "customer": "cus_1",
        "customer_details": {"email": "jenny@example.com"},
        "payment_status": "paid",
        "created": 1679600215,
    }
    (order,) = connector.normalize(_envelope(_event("checkout.session.completed", session)))
    assert isinstance(order, Order)
    assert (
        order.external_id,
        order.total.amount,
        order.total.currency,
        order.email,
        order.financial_status,
    ) == ("cs_test_a1", Decimal("21.98"), "EUR", "jenny@example.com", "paid")


def test_unknown_deleted_and_mismatched_events_yield_nothing() -> None:
    """Unknown types, deletions and data of an unexpected object give no records."""
    assert connector.normalize(_envelope(_event("invoice.paid", {"id": "in_1", "object": "invoice"}))) == []
    assert (
        connector.normalize(_envelope(_event("customer.deleted", {"id": "cus_1", "object": "customer"})))
        == []
    )
    assert (
        connector.normalize(
            _envelope(
                _event(
                    "payment_intent.succeeded",
                    {"id": "ch_1", "object": "charge", "amount": 1, "currency": "usd"},
                )
            )
        )
        == []
    )


def test_sign_matches_the_documented_vector() -> None:
    """Our signer reproduces stripe-python's header for the documented payload."""
    body = b'{"id":"evt_test_webhook","object":"event"}'
    signed = connector.sign(body, {}, SECRET, 1700000000)
    assert signed.headers["Stripe-Signature"] == (
        "t=1700000000,v1=d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990"
    )
    assert isinstance(signed, SignedRequest)
