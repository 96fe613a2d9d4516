"""Canonical entities that connectors produce from vendor payloads.

Amounts are Decimal with an ISO-4217 currency; every time is timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
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

    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        """Every datetime field of every record is stored in UTC."""
        return as_utc(value) if isinstance(value, datetime) else value

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


class Ticket(Record):
    """A support ticket (Zendesk)."""

    kind: ClassVar[str] = "ticket"
    subject: str | None = None
    status: str | None = None  # lower-case vendor status: new, open, pending, hold, solved, closed
    priority: str | None = None
    requester_id: str | None = None
    assignee_id: str | None = None
    channel: str | None = None
    tags: tuple[str, ...] = ()
    created_at: AwareDatetime | None = None


class Conversation(Record):
    """A chat conversation (Chatwoot, Meta inboxes)."""

    kind: ClassVar[str] = "conversation"
    status: str | None = None
    inbox_id: str | None = None
    contact_id: str | None = None
    assignee_id: str | None = None
    channel: str | None = None
    created_at: AwareDatetime | None = None


class Message(Record):
    """One message in a conversation or ticket; `direction` is inbound (from a customer) or outbound."""

    kind: ClassVar[str] = "message"
    conversation_id: str | None = None
    direction: str | None = None
    author_id: str | None = None
    text: str | None = None
    private: bool = False
    created_at: AwareDatetime | None = None


class Profile(Record):
    """A marketing profile (Klaviyo): the person a campaign or flow talks to."""

    kind: ClassVar[str] = "profile"
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class MarketingEvent(Record):
    """Something a profile did or received: email opened, SMS sent, unsubscribed…"""

    kind: ClassVar[str] = "marketing_event"
    name: str
    channel: str | None = None  # email, sms, push
    profile_id: str | None = None
    email: str | None = None
    campaign_id: str | None = None
    flow_id: str | None = None
    subject: str | None = None
    occurred_at: AwareDatetime | None = None


class ReportRow(Record):
    """One row of an analytics report (GA4): a day and its dimension values, with their metrics.
    Reports have no vendor update time: a row is re-pulled while its day settles."""

    kind: ClassVar[str] = "report_row"
    day: date
    dimensions: dict[str, str] = {}
    metrics: dict[str, Decimal] = {}
