"""Where a vendor client gets its access token: the `TokenProvider` protocol.

    client = VendorClient("zendesk", "helpdesk", base, auth=TokenAuth(provider))

The client asks `provider.token()` before it sends a call and, when the vendor refuses the token
(a 401, or a vendor's own "token expired" answer), `provider.refresh(rejected)` once, then sends the
call once more. A provider backed by an OAuth connection (`events.connections.ConnectionTokens`)
refreshes before expiry and makes sure that only one refresh happens at a time across every process;
`StaticToken` is a fixed API key. Neither a token nor a provider ever shows in a repr.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from schemas.errors import ReauthorizationRequired


@runtime_checkable
class TokenProvider(Protocol):
    """Hands out a usable access token for one vendor account."""

    def token(self) -> str:
        """A token to send now (refreshed first when it is about to expire)."""

    def refresh(self, rejected: str) -> str:
        """The vendor refused `rejected`: a new token (or the one another caller already got)."""


@dataclass(frozen=True)
class StaticToken:
    """A fixed API key (`[sources.X.api] token`): nothing to refresh, so a refusal needs a person."""

    value: str = field(repr=False)
    account: str = ""

    def token(self) -> str:
        return self.value

    def refresh(self, rejected: str) -> str:
        if not hmac.compare_digest(rejected.encode(), self.value.encode()):
            return self.value
        raise ReauthorizationRequired(f"{self.account or 'vendor'}: the API token was refused")


@dataclass(frozen=True)
class TokenAuth:
    """How a token rides on a request: `header: scheme token` (Shopify: X-Shopify-Access-Token, no scheme)."""

    provider: TokenProvider = field(repr=False)
    header: str = "Authorization"
    scheme: str = "Bearer"

    def value(self, token: str) -> str:
        return f"{self.scheme} {token}" if self.scheme else token
