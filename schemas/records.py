"""Canonical entities that connectors produce from vendor payloads.

Amounts are Decimal with an ISO-4217 currency; every time is timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, field_validator


def as_utc(value: datetime) -> datetime:
    """Convert an aware datetime to UTC; reject naive ones (their zone is unknown)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: a timezone is required")
    return value.astimezone(UTC)


class Money(BaseModel):
    model_config = ConfigDict(frozen=True)

    amount: Decimal
    currency: str

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        if len(value) != 3 or not value.isalpha():
            raise ValueError(f"currency must be an ISO-4217 code, got {value!r}")
        return value.upper()


class Record(BaseModel):
    """Base of every canonical entity: `kind` names the table of records it lands in."""

    model_config = ConfigDict(frozen=True)
    kind: ClassVar[str]

    external_id: str
    updated_at: AwareDatetime | None = None

    @field_validator("updated_at", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    def data(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return self.model_dump(mode="json")


class Customer(Record):
    kind: ClassVar[str] = "customer"
    email: str | None = None
    name: str | None = None


class Order(Record):
    kind: ClassVar[str] = "order"
    number: str | None = None
    email: str | None = None
    total: Money | None = None
    financial_status: str | None = None
    created_at: AwareDatetime | None = None
    customer_id: str | None = None


class Payment(Record):
    kind: ClassVar[str] = "payment"
    amount: Money
    status: str
    customer_id: str | None = None
    created_at: AwareDatetime | None = None


class Refund(Record):
    kind: ClassVar[str] = "refund"
    amount: Money
    payment_id: str | None = None
    status: str | None = None
    created_at: AwareDatetime | None = None
