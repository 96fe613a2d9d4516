"""Stripe events → canonical types and records. Amounts are integers in the currency's minor unit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Delivery, Options, Parsed
from connectors.payloads import load_object, money, obj, parse_time, text, validated
from schemas.envelope import Envelope
from schemas.errors import InvalidPayload, MalformedError
from schemas.records import Customer, Money, Order, Payment, Record, Refund

TYPES = {
    "payment_intent.succeeded": "payment.succeeded",
    "payment_intent.payment_failed": "payment.failed",
    "payment_intent.canceled": "payment.canceled",
    "refund.created": "refund.created",
    "refund.updated": "refund.updated",
    "refund.failed": "refund.failed",
    "customer.created": "customer.created",
    "customer.updated": "customer.updated",
    "customer.deleted": "customer.deleted",
    "checkout.session.completed": "checkout.completed",
}

# docs.stripe.com/currencies: zero-decimal currencies take amounts in whole units; the five
# three-decimal ones in thousandths. ISK, HUF, TWD and UGX are "special cases" that the API still
# represents with two decimals (their last two digits must be 00), so they stay at the default 2.
ZERO_DECIMAL = frozenset(
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "vnd", "vuv", "xaf", "xof", "xpf"]
)
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])


def minor_units(amount: Any, currency: Any) -> Money | None:
    """Money from a Stripe amount (an integer count of the currency's minor unit)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or not isinstance(currency, str):
        return None
    code = currency.lower()
    exponent = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    return money(amount, currency, exponent=exponent)


def canonical_type(event_type: str) -> str:
    """Hookyard's type for a Stripe event type (`stripe.<type>` when it has no canonical one)."""
    return TYPES.get(event_type, f"stripe.{event_type}")


def parse(body: bytes, headers: Mapping[str, str], options: Options) -> Parsed:
    event = load_object(body)
    event_id, event_type = event.get("id"), text(event.get("type"))
    if not isinstance(event_id, str) or not event_id:
        raise MalformedError("Stripe event has no id", code="missing_id")
    return Parsed(
        deliveries=[
            Delivery(
                dedupe_key=event_id,
                type=canonical_type(event_type or "unknown"),
                payload=event,
                occurred_at=parse_time(event.get("created")),
            )
        ]
    )


def _payment_intent(data: dict[str, Any]) -> list[Record]:
    amount = data.get("amount_received") if data.get("status") == "succeeded" else data.get("amount")
    total = _amount(data, amount)
    return [
        Payment(
            external_id=text(data.get("id")),
            amount=total,
            status=text(data.get("status")) or "unknown",
            customer_id=text(data.get("customer")),
            created_at=parse_time(data.get("created")),
        )
    ]


def _amount(data: dict[str, Any], amount: Any) -> Money:
    """The object's amount as Money; a known payment object without a usable one is InvalidPayload."""
    total = minor_units(amount, data.get("currency"))
    if total is None:
        raise InvalidPayload(
            f"{data.get('object')} {data.get('id')}: amount {amount!r} "
            f"in currency {data.get('currency')!r} is not a usable amount"
        )
    return total


def _charge(data: dict[str, Any]) -> list[Record]:
    """A charge is one attempt at a PaymentIntent: it updates the payment keyed by the intent."""
    total = _amount(data, data.get("amount"))
    status = "refunded" if data.get("refunded") else text(data.get("status")) or "unknown"
    return [
        Payment(
            external_id=text(data.get("payment_intent")) or text(data.get("id")),
            amount=total,
            status=status,
            customer_id=text(data.get("customer")),
            created_at=parse_time(data.get("created")),
        )
    ]


def _refund(data: dict[str, Any]) -> list[Record]:
    total = _amount(data, data.get("amount"))
    return [
        Refund(
            external_id=text(data.get("id")),
            amount=total,
            payment_id=text(data.get("payment_intent")) or text(data.get("charge")),
            status=text(data.get("status")),
            created_at=parse_time(data.get("created")),
        )
    ]


def _customer(data: dict[str, Any]) -> list[Record]:
    return [
        Customer(external_id=text(data.get("id")), email=text(data.get("email")), name=text(data.get("name")))
    ]


def _checkout(data: dict[str, Any]) -> list[Record]:
    details = obj(data.get("customer_details"))
    return [
        Order(
            external_id=text(data.get("id")),
            email=text(details.get("email")),
            total=minor_units(data.get("amount_total"), data.get("currency")),
            financial_status=text(data.get("payment_status")),
            created_at=parse_time(data.get("created")),
            customer_id=text(data.get("customer")),
        )
    ]


def _types(mapper: Any, obj_name: str, *event_types: str) -> dict[str, tuple[Any, str]]:
    return {canonical_type(t): (mapper, obj_name) for t in event_types}


# canonical or stripe.* type → (record mapper, the Stripe object its data must be)
MAPPERS = {
    **_types(
        _payment_intent,
        "payment_intent",
        "payment_intent.created",
        "payment_intent.processing",
        "payment_intent.requires_action",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.amount_capturable_updated",
    ),
    **_types(_charge, "charge", "charge.succeeded", "charge.failed", "charge.captured", "charge.refunded"),
    **_types(_refund, "refund", "refund.created", "refund.updated", "refund.failed"),
    **_types(_customer, "customer", "customer.created", "customer.updated"),
    **_types(
        _checkout,
        "checkout.session",
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
    ),
}


@validated
def normalize(envelope: Envelope) -> list[Record]:
    mapper, object_name = MAPPERS.get(envelope.type, (None, None))
    event = obj(envelope.payload)
    data = obj(obj(event.get("data")).get("object"))
    if mapper is None or data.get("object") != object_name or text(data.get("id")) is None:
        return []
    updated = parse_time(event.get("created"))
    # the event's time orders out-of-order deliveries of the same object
    return [r.model_copy(update={"updated_at": updated}) if r.updated_at is None else r for r in mapper(data)]
