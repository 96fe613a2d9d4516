"""Helpers for reading vendor payloads after the signature has been checked.

The readers (`obj`, `items`, `text`, `money`…) never raise on unexpected shapes: `normalize` must map
any JSON a vendor (or an attacker holding a leaked secret) sends to records or to nothing.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

import orjson
from pydantic import ValidationError

from schemas.envelope import Envelope
from schemas.errors import InvalidPayload, MalformedError
from schemas.records import Money, Record


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


def load_form(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (Slack commands, GitHub form deliveries)."""
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body)))
    except (UnicodeDecodeError, ValueError):
        raise MalformedError("body is not a valid form encoding", code="invalid_form") from None


def is_form(headers: dict[str, str] | Any) -> bool:
    return "application/x-www-form-urlencoded" in (headers.get("content-type") or "").lower()


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def json_hash(value: Any) -> str:
    """A stable hash of a JSON value (keys sorted), for keys of items that carry no id of their own."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


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


def parse_epoch(value: Any) -> datetime | None:
    """Unix seconds or milliseconds (Meta mixes both), as a number or numeric text ("1515449522.000016")."""
    if isinstance(value, str):
        number = decimal_or_none(value) if value.isascii() else None
        value = float(number) if number is not None else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return parse_time(value / 1000 if value > 10**11 else value)


def decimal_or_none(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def obj(value: Any) -> dict[str, Any]:
    """The value when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[Any]:
    """The value when it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def text(value: Any) -> str | None:
    """A non-empty string or a number as text (ids come as either); anything else is None."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def money(amount: Any, currency: Any, *, exponent: int = 0) -> Money | None:
    """Money from a major-unit amount, or from minor units with `exponent` (cents: 2); else None."""
    value = decimal_or_none(amount)
    if value is None or not isinstance(currency, str):
        return None
    try:
        return Money(amount=value.scaleb(-exponent) if exponent else value, currency=currency)
    except ValidationError:
        return None


def validated(normalize: Callable[[Envelope], list[Record]]) -> Callable[[Envelope], list[Record]]:
    """A known event whose payload a canonical record refuses is an InvalidPayload (a permanent
    error: dead-lettered, fixable with `dlq edit`), never silently dropped and never a crash."""

    @functools.wraps(normalize)
    def wrapper(envelope: Envelope) -> list[Record]:
        try:
            return normalize(envelope)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or e.get('ctx', '')}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            raise InvalidPayload(f"{envelope.type} does not fit {exc.title}: {problems}") from None

    return wrapper


def pointer_tokens(path: str) -> list[str]:
    """The reference tokens of an RFC 6901 JSON pointer ("" is the whole document)."""
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"a JSON pointer starts with '/', got {path!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def resolve(document: Any, path: str) -> Any:
    """The value a JSON pointer designates, or None when the path does not exist."""
    for token in pointer_tokens(path):
        if isinstance(document, dict):
            document = document.get(token)
        elif isinstance(document, list) and token.isascii() and token.isdigit():
            index = int(token)
            document = document[index] if index < len(document) else None
        else:
            return None
    return document
