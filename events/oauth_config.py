"""`[sources.X.oauth]`: the OAuth connection of a source, validated when the sources file loads.

    [sources.helpdesk]
    connector = "zendesk"
    secrets = ["${ZENDESK_WEBHOOK_SECRET}"]

    [sources.helpdesk.oauth]              # provider = "zendesk" by default: the connector's name
    client_id = "${ZENDESK_CLIENT_ID}"
    client_secret = "${ZENDESK_CLIENT_SECRET}"
    params = { subdomain = "acme" }       # fills {subdomain} in the provider's URLs
    scopes = ["read", "write"]            # any field of connectors.oauth.Provider may be overridden

Every field of the provider's defaults (`connectors.oauth.PROVIDERS`) can be set here; a source whose
connector has no defaults names `provider` or gives the URLs itself. The client id and secret are
SecretStr. The rules checked at load, besides types: URLs are https (plain http only to a loopback
host), every `{name}` in a URL has a value in `params`, a provider that requires PKCE cannot have it
turned off, a public client (`client_auth = "none"`) needs PKCE, any other needs a secret.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError

from connectors.base import HeaderName, config_error
from connectors.oauth import PROVIDERS, Body, ClientAuth, Pkce, TokenEndpoint
from schemas.errors import ConfigError

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
URL_FIELDS = ("authorize_url", "token_url", "revoke_url")
DEFAULT_REFRESH_MARGIN_S = 300.0


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _endpoint_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError("must be https (plain http only to a loopback host)")
    return value


EndpointUrl = Annotated[str, AfterValidator(_endpoint_url)]


class OAuthConfig(BaseModel):
    """A source's OAuth client at its provider: the provider's defaults with the table's overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    provider: str | None = None
    authorize_url: EndpointUrl
    token_url: EndpointUrl
    revoke_url: EndpointUrl | None = None
    scopes: tuple[str, ...] = ()
    scope_separator: str = Field(" ", min_length=1, max_length=1)
    pkce: Pkce = Pkce.ON
    client_auth: ClientAuth = ClientAuth.POST
    body: Body = Body.FORM
    client_id: SecretStr
    client_secret: SecretStr | None = None
    redirect_uri: EndpointUrl | None = None  # default: {HOOKYARD_OAUTH__PUBLIC_URL}/oauth/{source}/callback
    authorize_params: dict[str, str] = {}
    token_params: dict[str, str] = {}
    api_header: HeaderName = "Authorization"
    api_scheme: str = "Bearer"
    refresh_margin_s: float = Field(DEFAULT_REFRESH_MARGIN_S, ge=0, le=86_400)

    def endpoint(self, http: Any = None, timeout_s: float = 15.0) -> TokenEndpoint:
        """The token endpoint client for this connection (`http`: an httpx.Client to reuse)."""
        return TokenEndpoint(
            token_url=self.token_url,
            client_id=self.client_id.get_secret_value(),
            client_secret=self.client_secret.get_secret_value() if self.client_secret else None,
            client_auth=self.client_auth,
            body=self.body,
            token_params=self.token_params,
            revoke_url=self.revoke_url,
            http=http,
            timeout_s=timeout_s,
        )


def _fill(table: dict[str, Any], params: Mapping[str, Any], where: str) -> None:
    for name in URL_FIELDS:
        url = table.get(name)
        if not isinstance(url, str):
            continue
        for key in _PLACEHOLDER.findall(url):
            if not isinstance(params.get(key), str) or not params[key]:
                raise ConfigError(f'{where}.params: {name} needs {{{key}}}; set params = {{ {key} = "…" }}')
        table[name] = _PLACEHOLDER.sub(lambda m: str(params[m.group(1)]), url)


def load_oauth(table: Mapping[str, Any], connector: str, where: str) -> OAuthConfig:
    """Validate a source's oauth table (its `${VAR}`s already expanded) over its provider's defaults."""
    given = dict(table)
    provider = given.get("provider", connector if connector in PROVIDERS else None)
    if provider is not None and provider not in PROVIDERS:
        raise ConfigError(
            f"{where}.provider: unknown provider {provider!r}; known: {', '.join(sorted(PROVIDERS))} "
            "(or leave it out and give authorize_url and token_url)"
        )
    defaults = dataclasses.asdict(PROVIDERS[provider]) if provider else {}
    params = given.pop("params", {})
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where}.params: must be a table of strings")
    merged = {**defaults, **given, "provider": provider}
    _fill(merged, params, where)
    try:
        config = OAuthConfig.model_validate(merged)
    except ValidationError as exc:
        raise config_error(where, exc) from None
    if provider and PROVIDERS[provider].pkce is Pkce.REQUIRED and config.pkce is not Pkce.REQUIRED:
        raise ConfigError(f"{where}.pkce: {provider} requires PKCE; it cannot be {config.pkce.value!r}")
    if config.client_auth is ClientAuth.NONE and config.pkce is Pkce.OFF:
        raise ConfigError(f"{where}.pkce: a public client (client_auth = 'none') must use PKCE")
    if config.client_auth is not ClientAuth.NONE and config.client_secret is None:
        raise ConfigError(
            f"{where}.client_secret: required with client_auth = {config.client_auth.value!r} "
            "(a public client sets client_auth = 'none')"
        )
    if not config.client_id.get_secret_value():
        raise ConfigError(f"{where}.client_id: empty")
    return config
