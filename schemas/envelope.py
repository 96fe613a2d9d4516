"""The normalized envelope every accepted webhook becomes, whatever the vendor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict


class Envelope(BaseModel):
    """One vendor event as Hookyard stores and hands it to a connector's `normalize`."""

    model_config = ConfigDict(frozen=True)

    id: str
    source: str
    vendor: str
    type: str  # canonical ("order.created") or "<vendor>.<topic>" when there is no canonical one
    dedupe_key: str
    occurred_at: AwareDatetime | None = None
    received_at: datetime
    headers: dict[str, str] = {}
    payload: Any = None

    @classmethod
    def from_row(cls, row: Any) -> Envelope:
        """The envelope of a stored event (any object with the `events` columns as attributes)."""
        return cls(
            id=row.id,
            source=row.source,
            vendor=row.vendor,
            type=row.type,
            dedupe_key=row.dedupe_key,
            occurred_at=row.occurred_at,
            received_at=row.received_at,
            headers=row.headers,
            payload=row.payload,
        )
