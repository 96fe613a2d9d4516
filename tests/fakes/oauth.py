"""Fake OAuth 2.0 provider (RFC 6749 code grant + refresh, RFC 7636 PKCE, RFC 7009 revocation) with
a protected API, behaving like the vendors of apis.md: rotating refresh tokens (Slack, Zendesk:
strict; Shopify since 2026-08: the old one lasts until the new one is used), Zendesk's refresh that
deletes the previous pair, Klaviyo's required PKCE and Basic client authentication.

`GET /oauth/authorize` approves at once and redirects to the client with a code and the state as
sent; `POST /oauth/token` (form or JSON) trades a code or a refresh token; `POST /oauth/revoke`;
`GET /api/me` answers a valid access token. `GET /_fake/oauth` counts what happened, reused refresh
tokens included; `POST /_fake/oauth/expire` expires every access token now. README.md has the rest.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tests.fakes.base import Fake, json_response
from tests.fakes.config import ConfigError

PKCE_MODES = ("off", "on", "required")
CLIENT_AUTH = ("basic", "post", "any")
ROTATION = ("strict", "grace", "off")


@dataclass
class Code:
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str | None
    expires_at: float
    used: bool = False


@dataclass
class Grant:
    """One refresh token's line: the refresh token and the access tokens issued with it."""

    client_id: str
    scope: str
    refresh_expires_at: float | None
    access: dict[str, float] = field(default_factory=dict)  # access token → expires at
    state: str = "live"  # live | used (rotated away) | revoked
    exchanged: int = 0  # times it was traded for a new pair
    successor: str | None = None  # grace: the unused replacement
    predecessor: str | None = None  # grace: the token this one replaced, alive until this one is used


class RefusedGrant(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class OAuthFake(Fake):
    name = "oauth"
    DEFAULTS = {
        "clients": ["hookyard-demo:demo-secret"],  # "client_id:secret"; "id:" is a public client
        "redirect_uris": ["http://127.0.0.1:*/oauth/*/callback", "http://localhost:*/oauth/*/callback"],
        "scopes": ["read", "write"],  # what may be asked for (space- or comma-separated)
        "pkce": "on",  # off: challenges ignored · on: enforced when sent · required: refused without
        "client_auth": "any",  # basic · post · any (either, never both)
        "rotation": "strict",  # strict: used, it dies · grace: it lives until its successor is used · off
        "revoke_previous_access": False,  # Zendesk: a refresh deletes the previous pair
        "lifetimes": {"code_s": 60, "access_s": 3600, "refresh_s": 0},  # 0: the refresh token never expires
    }

    def setup(self) -> None:
        for name, allowed in (("pkce", PKCE_MODES), ("client_auth", CLIENT_AUTH), ("rotation", ROTATION)):
            if self.config[name] not in allowed:
                raise ConfigError(f"{name}: one of {', '.join(allowed)}")
        self.clients: dict[str, str] = {}
        for item in self.config["clients"]:
            client_id, sep, secret = item.partition(":")
            if not sep or not client_id:
                raise ConfigError(f"clients: {item!r} is not 'id:secret'")
            self.clients[client_id] = secret
        self.codes: dict[str, Code] = {}
        self.grants: dict[str, Grant] = {}  # refresh token → its line
        self.access_index: dict[str, str] = {}  # access token → refresh token of its line
        self.counts: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    def routes(self) -> list[Route]:
        return [
            self.route("GET", "/oauth/authorize", self.authorize, auth=False),
            self.route("POST", "/oauth/token", self.token_endpoint, auth=False),
            self.route("POST", "/oauth/revoke", self.revoke, auth=False),
            self.route("GET", "/api/me", self.me, auth=False),
            Route("/_fake/oauth", self.control_oauth, methods=["GET"]),
            Route("/_fake/oauth/expire", self.control_expire, methods=["POST"]),
        ]

    async def around(self, request: Request, call: Callable[[], Awaitable[Response]]) -> Response:
        """Read the request before an injected delay: a client killed while the provider holds its
        answer has still had its grant processed (a rotation whose answer was lost)."""
        await request.body()
        return await call()

    def token(self, request: Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None

    def unauthorized(self, request: Request, reason: str) -> Response:
        return json_response(
            {"error": "invalid_token", "error_description": reason},
            401,
            {"www-authenticate": f'Bearer error="invalid_token", error_description="{reason}"'},
        )

    def error_response(self, request: Request, status: int, code: str) -> Response:
        return json_response({"error": code or "server_error", "error_description": "injected"}, status)

    # ----- authorize ----------------------------------------------------------------------------
    async def authorize(self, request: Request) -> Response:
        query = request.query_params
        client_id, redirect_uri = query.get("client_id", ""), query.get("redirect_uri", "")
        if client_id not in self.clients:
            return self.refuse(RefusedGrant(400, "invalid_client", "unknown client_id"))
        if not any(fnmatch.fnmatchcase(redirect_uri, p) for p in self.config["redirect_uris"]):
            return self.refuse(RefusedGrant(400, "invalid_request", "redirect_uri is not registered"))

        def back(**params: str) -> Response:
            if "state" in query:
                params["state"] = query["state"]
            return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", status_code=302)

        if query.get("response_type") != "code":
            return back(error="unsupported_response_type")
        challenge, method = query.get("code_challenge"), query.get("code_challenge_method", "plain")
        if self.config["pkce"] == "off":
            challenge = None
        elif challenge is None and self.config["pkce"] == "required":
            self.refused["pkce_missing"] += 1
            return back(error="invalid_request", error_description="code_challenge is required")
        elif challenge is not None and method != "S256":
            self.refused["pkce_method"] += 1
            return back(error="invalid_request", error_description="code_challenge_method must be S256")
        scope = query.get("scope", "")
        unknown = set(scope.replace(",", " ").split()) - set(self.config["scopes"])
        if unknown:
            return back(error="invalid_scope", error_description=f"unknown scopes {sorted(unknown)}")
        code = "code_" + secrets.token_urlsafe(18)
        self.codes[code] = Code(
            client_id, redirect_uri, scope, challenge, self.now() + self.config["lifetimes"]["code_s"]
        )
        self.counts["codes_issued"] += 1
        return back(code=code)

    # ----- token --------------------------------------------------------------------------------
    async def token_endpoint(self, request: Request) -> Response:
        try:
            fields = await self.fields(request)
            client_id = self.client(request, fields)
            grant_type = fields.get("grant_type")
            if grant_type == "authorization_code":
                return self.issue(*self.exchange(client_id, fields))
            if grant_type == "refresh_token":
                old = fields.get("refresh_token", "")
                client, scope, keep = self.rotate(client_id, old)
                return self.issue(client, scope, keep, rotated_from=old)
            raise RefusedGrant(400, "unsupported_grant_type", f"grant_type {grant_type!r}")
        except RefusedGrant as refused:
            return self.refuse(refused)

    async def fields(self, request: Request) -> dict[str, str]:
        body = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                data = orjson.loads(body)
            except ValueError:
                raise RefusedGrant(400, "invalid_request", "the JSON body does not parse") from None
            if not isinstance(data, dict):
                raise RefusedGrant(400, "invalid_request", "the JSON body is not an object")
            return {str(k): str(v) for k, v in data.items()}
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))

    def client(self, request: Request, fields: dict[str, str]) -> str:
        """The authenticated client id, by the configured method (RFC 6749 §2.3.1)."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        basic = scheme.lower() == "basic"
        posted = "client_secret" in fields
        if basic and posted:
            raise RefusedGrant(400, "invalid_request", "more than one client authentication method")
        method = "basic" if basic else "post"
        if self.config["client_auth"] not in ("any", method):
            raise RefusedGrant(
                401, "invalid_client", f"this client must authenticate with {self.config['client_auth']}"
            )
        if basic:
            try:
                client_id, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise RefusedGrant(401, "invalid_client", "malformed Basic credentials") from None
        else:
            client_id, secret = fields.get("client_id", ""), fields.get("client_secret", "")
        expected = self.clients.get(client_id)
        if expected is None or not secrets.compare_digest(expected, secret):
            raise RefusedGrant(401, "invalid_client", "unknown client or wrong secret")
        return client_id

    def exchange(self, client_id: str, fields: dict[str, str]) -> tuple[str, str]:
        code = self.codes.get(fields.get("code", ""))
        if code is None or code.client_id != client_id:
            raise RefusedGrant(400, "invalid_grant", "unknown authorization code")
        if code.used:
            self.refused["code_reused"] += 1
            raise RefusedGrant(400, "invalid_grant", "authorization code already used")
        if code.expires_at <= self.now():
            raise RefusedGrant(400, "invalid_grant", "authorization code expired")
        if fields.get("redirect_uri") != code.redirect_uri:
            self.refused["redirect_uri"] += 1
            raise RefusedGrant(400, "invalid_grant", "redirect_uri does not match the authorization request")
        if code.challenge is not None:
            verifier = fields.get("code_verifier", "")
            if not verifier or not secrets.compare_digest(s256(verifier), code.challenge):
                self.refused["pkce_verifier"] += 1
                raise RefusedGrant(400, "invalid_grant", "code_verifier does not match the code_challenge")
        elif self.clients[client_id] == "":
            raise RefusedGrant(400, "invalid_request", "a public client must use PKCE")
        code.used = True
        self.counts["exchanges"] += 1
        return client_id, code.scope

    def rotate(self, client_id: str, refresh: str) -> tuple[str, str, str | None]:
        """Check a refresh token and rotate it; returns (client, scope, refresh token to keep using
        when the provider does not rotate)."""
        grant = self.grants.get(refresh)
        if grant is None or grant.client_id != client_id:
            self.refused["refresh_unknown"] += 1
            raise RefusedGrant(400, "invalid_grant", "unknown refresh token")
        rotating = self.config["rotation"] != "off"
        if rotating and grant.exchanged:
            self.counts["reused_refresh_tokens"] += 1
        if grant.state != "live":
            self.refused[f"refresh_{grant.state}"] += 1
            said = "already used" if grant.state == "used" else "revoked"
            raise RefusedGrant(400, "invalid_grant", f"refresh token {said}")
        if grant.refresh_expires_at is not None and grant.refresh_expires_at <= self.now():
            self.refused["refresh_expired"] += 1
            raise RefusedGrant(400, "invalid_grant", "refresh token expired")
        grant.exchanged += 1
        self.counts["refreshes"] += 1
        if self.config["revoke_previous_access"]:
            self.drop_access(grant)
        if grant.predecessor is not None:  # the replacement is used: the grace of the old one ends
            self.retire(grant.predecessor, "used")
            grant.predecessor = None
        if not rotating:
            return client_id, grant.scope, refresh
        if self.config["rotation"] == "strict":
            grant.state = "used"
        elif grant.successor is not None:  # grace, used again: the unused replacement is replaced
            self.retire(grant.successor, "revoked")
        return client_id, grant.scope, None

    def drop_access(self, grant: Grant) -> None:
        for access in grant.access:
            self.access_index.pop(access, None)
        grant.access.clear()

    def retire(self, refresh: str, state: str) -> None:
        grant = self.grants.get(refresh)
        if grant is not None:
            grant.state = state
            if state == "revoked":
                self.drop_access(grant)

    def issue(
        self, client_id: str, scope: str, keep: str | None = None, rotated_from: str | None = None
    ) -> Response:
        """A new access token, on the line of `keep` (no rotation) or on a new refresh token."""
        lifetimes, now = self.config["lifetimes"], self.now()
        refresh = keep
        if refresh is None:
            refresh = "rt_" + secrets.token_urlsafe(24)
            expires = now + lifetimes["refresh_s"] if lifetimes["refresh_s"] else None
            self.grants[refresh] = Grant(client_id, scope, expires, predecessor=None)
            if rotated_from is not None and self.config["rotation"] == "grace":
                self.grants[rotated_from].successor = refresh
                self.grants[refresh].predecessor = rotated_from
        access = "at_" + secrets.token_urlsafe(24)
        self.grants[refresh].access[access] = now + lifetimes["access_s"]
        self.access_index[access] = refresh
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": lifetimes["access_s"],
            "refresh_token": refresh,
            "scope": scope,
        }
        if lifetimes["refresh_s"]:
            body["refresh_token_expires_in"] = lifetimes["refresh_s"]
        return json_response(body, headers={"cache-control": "no-store"})

    def refuse(self, refused: RefusedGrant) -> Response:
        headers = {"www-authenticate": "Basic"} if refused.status == 401 else None
        return json_response(
            {"error": refused.error, "error_description": refused.description}, refused.status, headers
        )

    # ----- revoke, the API, control ---------------------------------------------------------------
    async def revoke(self, request: Request) -> Response:
        try:
            fields = await self.fields(request)
            self.client(request, fields)
        except RefusedGrant as refused:
            return self.refuse(refused)
        token = fields.get("token", "")
        line = token if token in self.grants else self.access_index.get(token)
        if line is not None:
            self.retire(line, "revoked")
            self.counts["revocations"] += 1
        return json_response({})  # RFC 7009: 200 for an unknown token too

    async def me(self, request: Request) -> Response:
        token = self.token(request)
        if token is None:
            return self.unauthorized(request, "missing")
        line = self.access_index.get(token)
        if line is None:
            return self.unauthorized(request, "invalid")
        grant = self.grants[line]
        if grant.access[token] <= self.now() or self.fault(request, "unauthorized"):
            return self.unauthorized(request, "expired")
        self.counts["api_calls"] += 1
        return json_response({"client_id": grant.client_id, "scope": grant.scope})

    async def control_oauth(self, request: Request) -> Response:
        live = [g for g in self.grants.values() if g.state == "live"]
        return json_response(
            {
                **{
                    k: self.counts[k]
                    for k in (
                        "codes_issued",
                        "exchanges",
                        "refreshes",
                        "reused_refresh_tokens",
                        "revocations",
                        "api_calls",
                    )
                },
                "refused": dict(self.refused),
                "live_refresh_tokens": len(live),
                "live_access_tokens": sum(
                    1 for t, line in self.access_index.items() if self.grants[line].access[t] > self.now()
                ),
            }
        )

    async def control_expire(self, request: Request) -> Response:
        now = self.now()
        for grant in self.grants.values():
            grant.access = dict.fromkeys(grant.access, now)
        return json_response({"expired": len(self.access_index)})


FAKE = OAuthFake
