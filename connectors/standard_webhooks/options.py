"""A Standard Webhooks source's options: many vendors speak it, so their type names are per source."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from connectors.base import WindowOptions

TypeName = Annotated[str, Field(min_length=1)]


class Options(WindowOptions):
    """The window, and how the sender's event types become ours."""

    type_prefix: TypeName = "standard-webhooks"
    """Prefix of a type that `types` does not map: `<type_prefix>.<the sender's type>`."""
    types: dict[str, TypeName] = {}
    """The sender's type names mapped to canonical ones, e.g. `{ "invoice.paid" = "payment.succeeded" }`."""
