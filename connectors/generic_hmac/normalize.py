"""Generic HMAC deliveries: dedupe key, type and time read from where the source's options say.

The dedupe key is the `dedupe_header`, else the value at `dedupe_pointer`, else a hash of the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Delivery, Parsed
from connectors.generic_hmac.options import Options
from connectors.payloads import body_hash, load_json, parse_time, resolve, text
from schemas.envelope import Envelope
from schemas.errors import MalformedError
from schemas.records import Record


def _at(pointer: str | None, payload: Any) -> Any:
    return None if pointer is None else resolve(payload, pointer)


def dedupe_key(body: bytes, headers: Mapping[str, str], options: Options, payload: Any) -> str:
    if options.dedupe_header:
        value = headers.get(options.dedupe_header.lower())
        if not value:
            raise MalformedError(
                f"missing {options.dedupe_header} header (the dedupe key)", code="missing_id"
            )
        return value
    if options.dedupe_pointer is not None:
        value = text(resolve(payload, options.dedupe_pointer))
        if value is None:
            raise MalformedError(f"no dedupe key at {options.dedupe_pointer}", code="missing_id")
        return value
    return body_hash(body)


def parse(body: bytes, headers: Mapping[str, str], options: Options) -> Parsed:
    payload = load_json(body)
    name = text(_at(options.type_pointer, payload)) or options.type or "event"
    return Parsed(
        deliveries=[
            Delivery(
                dedupe_key=dedupe_key(body, headers, options, payload),
                type=options.types.get(name) or f"{options.type_prefix}.{name}",
                payload=payload,
                occurred_at=parse_time(_at(options.time_pointer, payload)),
            )
        ]
    )


def normalize(envelope: Envelope) -> list[Record]:
    """A generic sender's payload has no known shape: nothing canonical can be read from it."""
    return []
