"""Acme events → deliveries keyed by X-Acme-Delivery; `invoice.paid` → `payment.succeeded` + Payment.

Every other event is stored as `<type_prefix>.<type>` (`acme.<type>` by default) and yields no records.
"""

from __future__ import annotations

from collections.abc import Mapping

from acme_hooks.options import Options
from connectors.base import Delivery, Parsed
from connectors.payloads import load_object, money, obj, parse_time, text, validated
from schemas.envelope import Envelope
from schemas.errors import MalformedError
from schemas.records import Payment, Record

TYPES = {"invoice.paid": "payment.succeeded"}


def parse(body: bytes, headers: Mapping[str, str], options: Options) -> Parsed:
    delivery = headers.get("x-acme-delivery")
    if not delivery:
        raise MalformedError("missing X-Acme-Delivery header", code="missing_header")
    event = load_object(body)  # called only after verify passed
    kind = text(event.get("type")) or "unknown"
    return Parsed(
        deliveries=[
            Delivery(
                dedupe_key=delivery,  # the same on every retry of this delivery
                type=TYPES.get(kind) or f"{options.type_prefix}.{kind}",
                payload=event,
                occurred_at=parse_time(event.get("created_at")),
            )
        ]
    )


@validated
def normalize(envelope: Envelope) -> list[Record]:
    if envelope.type != "payment.succeeded":
        return []
    invoice = obj(obj(envelope.payload).get("data"))
    # Acme amounts are integer cents. A missing id or amount makes Payment refuse the payload;
    # @validated turns that into InvalidPayload: dead-lettered, fixable with `hookyard dlq edit`.
    return [
        Payment(
            external_id=text(invoice.get("id")),
            amount=money(invoice.get("amount_cents"), invoice.get("currency"), exponent=2),
            status="succeeded",
            customer_id=text(invoice.get("customer_id")),
            created_at=parse_time(invoice.get("paid_at")),
        )
    ]
