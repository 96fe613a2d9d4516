"""The fake OAuth provider: approval redirects, PKCE, redirect URIs, client auth, rotation, reuse,
revocation and expiry, as the tests of Hookyard's connections rely on them."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from connectors.oauth import challenge, new_verifier
from tests.fakes.config import ConfigError
from tests.fakes.process import InProcessFake, in_process

REDIRECT = "http://127.0.0.1:8000/oauth/src/callback"
CLIENT = {"client_id": "hookyard-demo", "client_secret": "demo-secret"}


def authorize(fake: InProcessFake, **params: str) -> httpx.Response:
    query = {"response_type": "code", "client_id": "hookyard-demo", "redirect_uri": REDIRECT, **params}
    return fake.client().get("/oauth/authorize", params=query)


def code_of(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def token(fake: InProcessFake, **fields: str) -> httpx.Response:
    return fake.client().post("/oauth/token", data={**CLIENT, **fields})


def connect(fake: InProcessFake) -> dict[str, Any]:
    verifier = new_verifier()
    code = code_of(authorize(fake, code_challenge=challenge(verifier), code_challenge_method="S256"))["code"]
    answer = token(
        fake, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def refresh(fake: InProcessFake, refresh_token: str) -> httpx.Response:
    return token(fake, grant_type="refresh_token", refresh_token=refresh_token)


def me(fake: InProcessFake, access: str) -> int:
    return fake.client().get("/api/me", headers={"Authorization": f"Bearer {access}"}).status_code


def test_authorize_approves_and_passes_the_state_through() -> None:
    """The provider redirects to the registered URI with a code and the state exactly as sent."""
    fake = in_process("oauth")
    params = code_of(authorize(fake, state="a.b-c_d.1.sig", scope="read"))
    assert params["state"] == "a.b-c_d.1.sig" and params["code"].startswith("code_")


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"client_id": "nobody"}, "invalid_client"),
        ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
    ],
)
def test_authorize_never_redirects_to_an_unverified_place(params: dict[str, str], error: str) -> None:
    """An unknown client or an unregistered redirect URI is a 400 page, not a redirect."""
    answer = authorize(in_process("oauth"), **params)
    assert answer.status_code == 400 and answer.json()["error"] == error


def test_pkce_is_enforced() -> None:
    """A wrong verifier is refused; `required` refuses an authorize without a challenge; plain is refused."""
    fake = in_process("oauth", {"pkce": "required"})
    assert code_of(authorize(fake))["error"] == "invalid_request"
    assert (
        code_of(authorize(fake, code_challenge="x" * 43, code_challenge_method="plain"))["error"]
        == "invalid_request"
    )
    code = code_of(authorize(fake, code_challenge=challenge(new_verifier()), code_challenge_method="S256"))[
        "code"
    ]
    wrong = token(
        fake, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=new_verifier()
    )
    assert wrong.status_code == 400
    assert wrong.json() == {
        "error": "invalid_grant",
        "error_description": "code_verifier does not match the code_challenge",
    }
    assert fake.control.oauth()["refused"] == {"pkce_missing": 1, "pkce_method": 1, "pkce_verifier": 1}


def test_the_code_needs_the_same_redirect_uri_and_works_once() -> None:
    """Another redirect_uri at the exchange is invalid_grant; so is a second use of a code."""
    fake = in_process("oauth", {"pkce": "off"})
    code = code_of(authorize(fake))["code"]
    other = token(fake, grant_type="authorization_code", code=code, redirect_uri=REDIRECT + "x")
    assert other.json()["error_description"] == "redirect_uri does not match the authorization request"
    assert token(fake, grant_type="authorization_code", code=code, redirect_uri=REDIRECT).status_code == 200
    again = token(fake, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    assert again.json()["error_description"] == "authorization code already used"


def test_client_authentication_follows_the_configured_method() -> None:
    """`basic` refuses a secret in the body; a wrong secret is 401 invalid_client; both at once is 400."""
    fake = in_process("oauth", {"client_auth": "basic", "pkce": "off"})
    code = code_of(authorize(fake))["code"]
    posted = token(fake, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    assert posted.status_code == 401 and posted.json()["error"] == "invalid_client"
    basic = "Basic " + base64.b64encode(b"hookyard-demo:demo-secret").decode()
    fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    assert (
        fake.client().post("/oauth/token", data=fields, headers={"Authorization": basic}).status_code == 200
    )
    both = fake.client().post("/oauth/token", data={**fields, **CLIENT}, headers={"Authorization": basic})
    assert both.status_code == 400
    wrong = "Basic " + base64.b64encode(b"hookyard-demo:guess").decode()
    assert (
        fake.client().post("/oauth/token", data=fields, headers={"Authorization": wrong}).status_code == 401
    )


def test_strict_rotation_kills_the_used_refresh_token_and_counts_its_reuse() -> None:
    """A refresh returns a new pair; the old refresh token is then invalid_grant and counted as reused."""
    fake = in_process("oauth")
    first = connect(fake)
    second = refresh(fake, first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert me(fake, first["access_token"]) == 200  # strict, but the old access token lives on
    reused = refresh(fake, first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert fake.control.oauth()["reused_refresh_tokens"] == 1
    assert refresh(fake, second["refresh_token"]).status_code == 200


def test_grace_rotation_keeps_the_old_token_until_the_new_one_is_used() -> None:
    """Shopify's grace: a lost answer can be asked again with the old token; once its successor is
    used, the old one is refused."""
    fake = in_process("oauth", {"rotation": "grace"})
    first = connect(fake)
    lost = refresh(fake, first["refresh_token"]).json()  # the answer that never arrived
    kept = refresh(fake, first["refresh_token"]).json()
    assert kept["refresh_token"] != lost["refresh_token"]
    assert refresh(fake, lost["refresh_token"]).status_code == 400  # replaced by the second answer
    assert refresh(fake, kept["refresh_token"]).status_code == 200
    assert refresh(fake, first["refresh_token"]).status_code == 400
    assert fake.control.oauth()["reused_refresh_tokens"] == 2


def test_zendesk_style_refresh_deletes_the_previous_pair() -> None:
    """revoke_previous_access: the access token of the old pair stops working at the refresh."""
    fake = in_process("oauth", {"revoke_previous_access": True})
    first = connect(fake)
    second = refresh(fake, first["refresh_token"]).json()
    assert me(fake, first["access_token"]) == 401 and me(fake, second["access_token"]) == 200


def test_expiry_follows_the_clock_and_revocation_ends_a_pair() -> None:
    """Tokens expire with the fake's clock (access tokens also on demand); a revoked line is dead."""
    fake = in_process("oauth", {"lifetimes": {"access_s": 60, "refresh_s": 600}})
    pair = connect(fake)
    assert pair["expires_in"] == 60 and pair["refresh_token_expires_in"] == 600
    fake.control.advance(61)
    assert me(fake, pair["access_token"]) == 401
    fresh = refresh(fake, pair["refresh_token"]).json()
    fake.control.expire_access()
    assert me(fake, fresh["access_token"]) == 401
    again = refresh(fake, fresh["refresh_token"]).json()
    assert (
        fake.client().post("/oauth/revoke", data={"token": again["refresh_token"], **CLIENT}).status_code
        == 200
    )
    assert me(fake, again["access_token"]) == 401
    assert refresh(fake, again["refresh_token"]).json()["error"] == "invalid_grant"
    late = connect(fake)
    fake.control.advance(601)
    assert refresh(fake, late["refresh_token"]).json()["error_description"] == "refresh token expired"


def test_a_bad_config_is_refused() -> None:
    """An unknown rotation mode or a client that is not id:secret is a ConfigError."""
    with pytest.raises(ConfigError, match="rotation"):
        in_process("oauth", {"rotation": "sometimes"})
    with pytest.raises(ConfigError, match="clients"):
        in_process("oauth", {"clients": ["no-colon"]})
