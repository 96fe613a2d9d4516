"""OAuth 2.0 with the vendors: their endpoints and habits, PKCE, and the token endpoint client.

`PROVIDERS` holds each vendor's defaults (apis.md): where to send the browser, where to trade a code
or a refresh token, how the client authenticates, whether PKCE is off, on or required, and how the
API wants the token. A source's `[sources.X.oauth]` table may override every field
(`events.oauth_config`). `{name}` placeholders (Shopify's shop, Zendesk's subdomain) are filled from
the table's `params`.

`TokenEndpoint` speaks RFC 6749 §4.1.3 (code), §6 (refresh) and RFC 7009 (revoke) with the vendor's
client authentication and body style. What the vendor answers:

| answer                                         | raised                                               |
|------------------------------------------------|------------------------------------------------------|
| 2xx with an access token                       | returned as a `TokenSet`                             |
| 4xx, or Slack's 200 `{"ok": false}`            | `GrantRefused` (permanent: a person must reconnect)  |
| 429, 5xx, transport error                      | `TransientError` (try again later)                   |
| 2xx without an access token, or not JSON       | `MalformedAnswer` (transient)                        |

Error details carry the vendor's `error` and `error_description`, never a token: anything we sent
that is secret is scrubbed from them first.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
import orjson

from schemas.errors import MalformedAnswer, ReauthorizationRequired, TransientError

DETAIL_CHARS = 300


class Pkce(StrEnum):
    OFF = "off"  # not sent (the vendor does not document it)
    ON = "on"  # sent, S256
    REQUIRED = "required"  # the vendor refuses a code exchange without it: cannot be turned off


class ClientAuth(StrEnum):
    BASIC = "basic"  # Authorization: Basic base64(id:secret) (RFC 6749 §2.3.1)
    POST = "post"  # client_id and client_secret in the body
    NONE = "none"  # a public client: client_id in the body, no secret (PKCE required)


class Body(StrEnum):
    FORM = "form"  # application/x-www-form-urlencoded (the RFC)
    JSON = "json"  # Shopify, Zendesk


@dataclass(frozen=True)
class Provider:
    """One vendor's OAuth habits; every field is a default a source may override."""

    authorize_url: str
    token_url: str
    revoke_url: str | None = None
    scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    pkce: Pkce = Pkce.ON
    client_auth: ClientAuth = ClientAuth.POST
    body: Body = Body.FORM
    authorize_params: Mapping[str, str] = field(default_factory=dict)  # extra query parameters
    token_params: Mapping[str, str] = field(default_factory=dict)  # extra fields of the code exchange
    api_header: str = "Authorization"  # how the vendor's API takes the access token
    api_scheme: str = "Bearer"


PROVIDERS: dict[str, Provider] = {
    # apis.md §1: expiring offline tokens (1 h) whose refresh token rotates; PKCE undocumented.
    "shopify": Provider(
        authorize_url="https://{shop}/admin/oauth/authorize",
        token_url="https://{shop}/admin/oauth/access_token",
        scopes=("read_orders", "read_customers"),
        scope_separator=",",
        pkce=Pkce.OFF,
        body=Body.JSON,
        token_params={"expiring": "1"},
        api_header="X-Shopify-Access-Token",
        api_scheme="",
    ),
    # apis.md §2, Stripe Connect: the access token does not expire; deauthorizing is not RFC 7009.
    "stripe": Provider(
        authorize_url="https://connect.stripe.com/oauth/authorize",
        token_url="https://connect.stripe.com/oauth/token",
        scopes=("read_write",),
        pkce=Pkce.OFF,
    ),
    # apis.md §3: PKCE supported; a refresh returns a new pair and deletes the previous one.
    "zendesk": Provider(
        authorize_url="https://{subdomain}.zendesk.com/oauth/authorizations/new",
        token_url="https://{subdomain}.zendesk.com/oauth/tokens",
        scopes=("read",),
        body=Body.JSON,
    ),
    # apis.md §4: PKCE S256 required, Basic client authentication, form bodies.
    "klaviyo": Provider(
        authorize_url="https://www.klaviyo.com/oauth/authorize",
        token_url="https://a.klaviyo.com/oauth/token",
        revoke_url="https://a.klaviyo.com/oauth/revoke",
        scopes=("accounts:read", "events:read", "profiles:read"),
        pkce=Pkce.REQUIRED,
        client_auth=ClientAuth.BASIC,
    ),
    # apis.md §6: with token rotation the access token lasts 12 h and each refresh revokes the old one.
    "slack": Provider(
        authorize_url="https://slack.com/oauth/v2/authorize",
        token_url="https://slack.com/api/oauth.v2.access",
        revoke_url="https://slack.com/api/auth.revoke",
        scopes=("chat:write",),
        scope_separator=",",
        pkce=Pkce.OFF,
    ),
    # apis.md §8 names service accounts for GA4; this is the user-consent flow with offline access.
    "google": Provider(
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url="https://oauth2.googleapis.com/token",
        revoke_url="https://oauth2.googleapis.com/revoke",
        scopes=("https://www.googleapis.com/auth/analytics.readonly",),
        authorize_params={"access_type": "offline", "prompt": "consent"},
    ),
}


def new_verifier() -> str:
    """A PKCE code verifier: 64 characters of [A-Za-z0-9_-] (RFC 7636 §4.1 allows 43 to 128)."""
    return secrets.token_urlsafe(48)


def challenge(verifier: str) -> str:
    """The S256 code challenge of a verifier: BASE64URL(SHA-256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class TokenSet:
    """What a token endpoint granted. The tokens never show in a repr."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_in_s: float | None = None
    refresh_expires_in_s: float | None = None
    scope: str | None = None
    token_type: str | None = None


class GrantRefused(ReauthorizationRequired):
    """The vendor refused the code or the refresh token (`invalid_grant` and the like): retrying
    cannot help; someone has to connect the source again."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.isdigit():
        return float(value)
    return None


def _scrub(text: str, hidden: Sequence[str]) -> str:
    for secret in hidden:
        if secret:
            text = text.replace(secret, "***")
    return text[:DETAIL_CHARS]


@dataclass(frozen=True)
class TokenEndpoint:
    """Trades a code or a refresh token for tokens, and revokes them, at one vendor."""

    token_url: str
    client_id: str = field(repr=False)
    client_secret: str | None = field(default=None, repr=False)
    client_auth: ClientAuth = ClientAuth.POST
    body: Body = Body.FORM
    token_params: Mapping[str, str] = field(default_factory=dict)
    revoke_url: str | None = None
    http: httpx.Client | None = field(default=None, repr=False, compare=False)
    timeout_s: float = 15.0

    def exchange(self, code: str, redirect_uri: str, verifier: str | None) -> TokenSet:
        """The authorization code grant (with the PKCE verifier when one was sent)."""
        fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if verifier:
            fields["code_verifier"] = verifier
        return self._grant({**self.token_params, **fields}, hidden=(code, verifier or ""))

    def refresh(self, refresh_token: str) -> TokenSet:
        """The refresh token grant. A vendor that rotates returns a new refresh token; one that does
        not returns none, and the old one stays."""
        fields = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._grant(fields, hidden=(refresh_token,))

    def revoke(self, token: str, hint: str) -> None:
        """RFC 7009: ask the vendor to forget `token` (`hint`: refresh_token or access_token)."""
        if self.revoke_url is None:
            return
        response = self._post(self.revoke_url, {"token": token, "token_type_hint": hint}, hidden=(token,))
        if response.status_code >= 400:
            raise self._refusal(response, hidden=(token,), what="revocation")

    def _grant(self, fields: dict[str, str], hidden: Sequence[str]) -> TokenSet:
        response = self._post(self.token_url, fields, hidden)
        if response.status_code >= 400:
            raise self._refusal(response, hidden, what=fields["grant_type"])
        try:
            data = orjson.loads(response.content)
        except ValueError:
            raise MalformedAnswer(f"token endpoint: a {response.status_code} that is not JSON") from None
        if not isinstance(data, dict):
            raise MalformedAnswer("token endpoint: the answer is not a JSON object")
        if data.get("ok") is False:  # Slack answers its errors with a 200
            raise GrantRefused(
                f"the provider refused the {fields['grant_type']}: {data.get('error')}",
                code=str(data.get("error")),
            )
        access = data.get("access_token")
        if not isinstance(access, str) or not access:
            raise MalformedAnswer("token endpoint: a 2xx without an access_token")
        refresh = data.get("refresh_token")
        scope = data.get("scope")
        return TokenSet(
            access_token=access,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_in_s=_number(data.get("expires_in")),
            refresh_expires_in_s=_number(data.get("refresh_token_expires_in")),
            scope=scope if isinstance(scope, str) else None,
            token_type=str(data["token_type"]) if data.get("token_type") else None,
        )

    def _post(self, url: str, fields: dict[str, str], hidden: Sequence[str]) -> httpx.Response:
        headers = {"Accept": "application/json"}
        sent = dict(fields)
        if self.client_auth is ClientAuth.BASIC:
            pair = f"{self.client_id}:{self.client_secret or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        else:
            sent["client_id"] = self.client_id
            if self.client_auth is ClientAuth.POST and self.client_secret:
                sent["client_secret"] = self.client_secret
        http = self.http or httpx.Client(timeout=self.timeout_s, follow_redirects=False)
        try:
            if self.body is Body.JSON:
                return http.post(url, json=sent, headers=headers, timeout=self.timeout_s)
            return http.post(url, data=sent, headers=headers, timeout=self.timeout_s)
        except httpx.TransportError as exc:
            raise TransientError(f"token endpoint unreachable: {type(exc).__name__}") from None
        finally:
            if self.http is None:
                http.close()

    def _refusal(self, response: httpx.Response, hidden: Sequence[str], what: str) -> Exception:
        hidden = (*hidden, self.client_secret or "")
        try:
            data = orjson.loads(response.content)
        except ValueError:
            data = None
        error = data.get("error") if isinstance(data, dict) else None
        described = data.get("error_description") if isinstance(data, dict) else None
        code = str(error) if isinstance(error, str) else f"http_{response.status_code}"
        text = f"{code}: {described}" if described else code
        detail = _scrub(f"the provider refused the {what} ({response.status_code} {text})", hidden)
        if response.status_code == 429 or response.status_code >= 500:
            return TransientError(detail)
        return GrantRefused(detail, code=code)
