"""Helpers for reading vendor payloads after the signature has been checked."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from schemas.errors import MalformedError


def load_json(body: bytes) -> Any:
    """Parse a verified body; MalformedError (400) when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedError(f"body is not valid JSON: {exc}", code="invalid_json") from None


def load_object(body: bytes) -> dict[str, Any]:
    data = load_json(body)
    if not isinstance(data, dict):
        raise MalformedError("body must be a JSON object", code="invalid_json")
    return data


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 string or unix seconds → aware UTC datetime; None when absent or unreadable."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def decimal_or_none(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None
