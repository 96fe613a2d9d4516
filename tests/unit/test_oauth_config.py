"""`[sources.X.oauth]` and the token keys: provider defaults, overrides, and one-line refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.oauth import PROVIDERS, Body, ClientAuth, Pkce
from events.secretbox import TOKEN_KEYS_VAR, SecretBox, new_key
from events.sources import load_sources
from schemas.errors import ConfigError


def load(tmp_path: Path, connector: str, table: str, provider_secrets: bool = True) -> object:
    creds = 'client_id = "cid"\nclient_secret = "${CLIENT_SECRET}"\n' if provider_secrets else ""
    path = tmp_path / "hookyard.toml"
    path.write_text(
        f'[sources.src]\nconnector = "{connector}"\nsecrets = ["s"]\n[sources.src.oauth]\n{creds}{table}\n'
    )
    return load_sources(path)["src"].oauth


@pytest.fixture(autouse=True)
def client_secret(monkeypatch: pytest.MonkeyPatch, token_keys: str) -> None:
    monkeypatch.setenv("CLIENT_SECRET", "very-secret-value")


def test_defaults_come_from_the_connectors_provider(tmp_path: Path) -> None:
    """Klaviyo: PKCE required, Basic client auth, its token URL; Shopify: the shop fills the URLs."""
    klaviyo = load(tmp_path, "klaviyo", "")
    assert klaviyo.provider == "klaviyo"
    assert klaviyo.pkce is Pkce.REQUIRED and klaviyo.client_auth is ClientAuth.BASIC
    assert klaviyo.token_url == "https://a.klaviyo.com/oauth/token"
    shop = load(tmp_path, "shopify", 'params = { shop = "acme.myshopify.com" }')
    assert shop.token_url == "https://acme.myshopify.com/admin/oauth/access_token"
    assert (shop.body, shop.api_header, shop.api_scheme) == (Body.JSON, "X-Shopify-Access-Token", "")
    assert shop.token_params == {"expiring": "1"}


def test_every_field_can_be_overridden(tmp_path: Path) -> None:
    """Scopes, PKCE, the client auth and the URLs given in the table win over the provider's."""
    zendesk = load(
        tmp_path,
        "zendesk",
        'params = { subdomain = "acme" }\nscopes = ["read", "write"]\npkce = "off"\n'
        'client_auth = "basic"\nrevoke_url = "https://acme.zendesk.com/revoke"\nrefresh_margin_s = 60',
    )
    assert zendesk.scopes == ("read", "write") and zendesk.pkce is Pkce.OFF
    assert zendesk.client_auth is ClientAuth.BASIC and zendesk.refresh_margin_s == 60
    assert zendesk.authorize_url == "https://acme.zendesk.com/oauth/authorizations/new"


def test_the_client_secret_never_shows(tmp_path: Path) -> None:
    """The client id and secret are SecretStr: the repr of the source shows neither."""
    config = load(tmp_path, "klaviyo", "")
    assert "very-secret-value" not in repr(config) and "cid" not in repr(config)
    assert config.client_secret.get_secret_value() == "very-secret-value"


@pytest.mark.parametrize(
    ("connector", "table", "message"),
    [
        ("klaviyo", 'pkce = "on"', "sources.src.oauth.pkce: klaviyo requires PKCE"),
        ("shopify", "", "sources.src.oauth.params: authorize_url needs {shop}"),
        ("github", "", "sources.src.oauth.authorize_url: Field required"),
        ("stripe", 'provider = "nosuch"', "sources.src.oauth.provider: unknown provider 'nosuch'"),
        (
            "stripe",
            'token_url = "http://example.com/t"',
            "sources.src.oauth.token_url: Value error, must be https",
        ),
        ("stripe", 'pkce = "sometimes"', "sources.src.oauth.pkce: Input should be"),
        ("stripe", "colour = 1", "sources.src.oauth.colour: Extra inputs are not permitted"),
        (
            "stripe",
            'client_auth = "none"\npkce = "off"',
            "a public client (client_auth = 'none') must use PKCE",
        ),
        ("stripe", 'client_id = "${NOT_SET_ANYWHERE}"', "${NOT_SET_ANYWHERE} is not set"),
    ],
)
def test_mistakes_stop_the_load_with_one_line(
    tmp_path: Path, connector: str, table: str, message: str
) -> None:
    """Each mistake is one ConfigError naming the file, the source and the field."""
    creds = "cid" if "client_id" not in table else None
    with pytest.raises(ConfigError) as caught:
        if creds:
            load(tmp_path, connector, table)
        else:
            load(tmp_path, connector, f'client_secret = "x"\n{table}', provider_secrets=False)
    assert message in str(caught.value) and str(tmp_path) in str(caught.value)
    assert "very-secret-value" not in str(caught.value)


def test_a_confidential_client_needs_its_secret(tmp_path: Path) -> None:
    """client_auth post or basic without client_secret is refused at load."""
    with pytest.raises(ConfigError, match=r"sources\.src\.oauth\.client_secret: required"):
        load(tmp_path, "stripe", 'client_id = "cid"', provider_secrets=False)


def test_an_oauth_source_needs_token_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No HOOKYARD_TOKEN_KEYS while a source has [oauth]: the load stops; a bad key is named by position."""
    monkeypatch.delenv(TOKEN_KEYS_VAR)
    with pytest.raises(ConfigError, match="HOOKYARD_TOKEN_KEYS is not set"):
        load(tmp_path, "stripe", "")
    monkeypatch.setenv(TOKEN_KEYS_VAR, f"{new_key()},not-a-key-at-all")
    with pytest.raises(ConfigError, match="key 2 of HOOKYARD_TOKEN_KEYS is not a Fernet key") as caught:
        load(tmp_path, "stripe", "")
    assert "not-a-key-at-all" not in str(caught.value)


def test_every_provider_default_is_valid(tmp_path: Path) -> None:
    """Each built-in provider's defaults load (with its placeholders filled) without an override."""
    for name in PROVIDERS:
        params = 'params = { shop = "a.myshopify.com", subdomain = "a" }'
        assert load(tmp_path, "stripe", f'provider = "{name}"\n{params}').provider == name


def test_sealed_with_an_old_key_opens_after_a_new_one_is_added() -> None:
    """Rotation: what the old key sealed opens once a new key is put first; reseal moves it to the new."""
    old, new = new_key(), new_key()
    sealed = SecretBox([old]).seal("at_token")
    rotated = SecretBox([new, old])
    assert rotated.open(sealed) == "at_token"
    resealed = rotated.reseal(sealed)
    assert SecretBox([new]).open(resealed) == "at_token"
    with pytest.raises(Exception, match="cannot be opened with any key"):
        SecretBox([new]).open(sealed)
    assert "at_token" not in resealed and repr(rotated) == "SecretBox(2 keys)"


def test_signatures_verify_across_a_rotation_and_refuse_tampering() -> None:
    """A state signed with the old key verifies after a new key is added; a changed byte does not."""
    old, new = new_key(), new_key()
    signature = SecretBox([old]).sign(b"helpdesk.nonce.123")
    assert SecretBox([new, old]).verify(b"helpdesk.nonce.123", signature)
    assert not SecretBox([new, old]).verify(b"helpdesk.nonce.124", signature)
    assert not SecretBox([new]).verify(b"helpdesk.nonce.123", signature)
