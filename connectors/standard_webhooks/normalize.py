"""Standard Webhooks events: `{"type", "timestamp", "data"}` by the spec's recommendation.

Many vendors speak Standard Webhooks, so the type prefix (option `type_prefix`, default
`standard-webhooks`) and a map to canonical types (option `types`) are per source.
"""

from __future__ import annotations

from collections.abc import Mapping

from connectors.base import Delivery, Parsed
from connectors.payloads import load_object, obj, parse_time, text
from connectors.standard_webhooks.options import Options
from connectors.standard_webhooks.verify import headers_of
from schemas.envelope import Envelope
from schemas.records import Record


def parse(body: bytes, headers: Mapping[str, str], options: Options) -> Parsed:
    msg_id, timestamp, _ = headers_of(headers)
    payload = load_object(body)  # the spec's payload is an object: type, timestamp, data
    event_type = text(obj(payload).get("type")) or "event"
    return Parsed(
        deliveries=[
            Delivery(
                dedupe_key=msg_id,
                type=options.types.get(event_type) or f"{options.type_prefix}.{event_type}",
                payload=payload,
                occurred_at=parse_time(obj(payload).get("timestamp")) or parse_time(int(timestamp.strip())),
            )
        ]
    )


def normalize(envelope: Envelope) -> list[Record]:
    """The spec fixes the envelope, not the data: nothing canonical can be read from it."""
    return []
