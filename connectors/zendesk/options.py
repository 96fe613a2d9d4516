"""A Zendesk source's options."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from connectors.base import WindowOptions


class Options(WindowOptions):
    """The window, the order Zendesk signs in, and the type given to trigger webhooks."""

    signature_order: Literal["timestamp_body", "body_timestamp"] = "timestamp_body"
    """TIMESTAMP+BODY as Zendesk signs today; an older page documents BODY+TIMESTAMP."""
    type: str = Field("zendesk.trigger", min_length=1)
    """The event type of trigger webhooks, whose bodies the Zendesk admin writes."""
