"""Generic HMAC deliveries: dedupe key and type read from where the source's options say.

dedupe_header   header holding the delivery id (e.g. "X-Request-Id"), or
dedupe_pointer  JSON pointer into the body (e.g. "/id"); neither: a hash of the body
type_pointer    JSON pointer to the event type (e.g. "/type"), or
type            a fixed type for every delivery of the source
type_prefix     prefix of non-canonical types (default "generic")
types           map from the sender's type names to canonical ones
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Delivery, Parsed
from connectors.payloads import body_hash, load_json, obj, parse_time, resolve, text
from schemas.envelope import Envelope
from schemas.errors import ConfigError, MalformedError
from schemas.records import Record


def _pointer(options: Mapping[str, Any], name: str, payload: Any) -> Any:
    path = options.get(name)
    if path is None:
        return None
    try:
        return resolve(payload, path) if isinstance(path, str) else _bad(name, path)
    except ValueError as exc:
        raise ConfigError(f"generic-hmac option {name}: {exc}") from None


def _bad(name: str, value: Any) -> Any:
    raise ConfigError(f"generic-hmac option {name} must be a JSON pointer string, got {value!r}")


def dedupe_key(body: bytes, headers: Mapping[str, str], options: Mapping[str, Any], payload: Any) -> str:
    if options.get("dedupe_header"):
        value = headers.get(str(options["dedupe_header"]).lower())
        if not value:
            raise MalformedError(
                f"missing {options['dedupe_header']} header (the dedupe key)", code="missing_id"
            )
        return value
    if options.get("dedupe_pointer") is not None:
        value = text(_pointer(options, "dedupe_pointer", payload))
        if value is None:
            raise MalformedError(f"no dedupe key at {options['dedupe_pointer']}", code="missing_id")
        return value
    return body_hash(body)


def parse(body: bytes, headers: Mapping[str, str], options: Mapping[str, Any]) -> Parsed:
    payload = load_json(body)
    name = text(_pointer(options, "type_pointer", payload)) or text(options.get("type")) or "event"
    canonical = obj(options.get("types")).get(name)
    prefix = text(options.get("type_prefix")) or "generic"
    return Parsed(
        deliveries=[
            Delivery(
                dedupe_key=dedupe_key(body, headers, options, payload),
                type=canonical if isinstance(canonical, str) else f"{prefix}.{name}",
                payload=payload,
                occurred_at=parse_time(_pointer(options, "time_pointer", payload)),
            )
        ]
    )


def normalize(envelope: Envelope) -> list[Record]:
    """A generic sender's payload has no known shape: nothing canonical can be read from it."""
    return []
