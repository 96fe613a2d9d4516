"""Every built-in connector passes the certification kit against its own samples."""

from __future__ import annotations

import pytest

from connectors import registry
from connectors.base import Signer
from connectors.certify import CHECKS, CertificationError, Subject, certify

SECRETS = {
    "shopify": "shpss_0123456789abcdef0123456789abcdef",
    "stripe": "whsec_test_secret_0123456789abcdef",
    "github": "It's a Secret to Everybody",
    "standard-webhooks": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "slack": "8f742231b10e8888abcd99yyyzzz85a5",
    "zendesk": "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==",
    "klaviyo": "supersecretkey_1234567890",
    "meta": "meta_app_secret_0123456789",
    "chatwoot": "cw_test_secret_0123456789",
}
BUILT_IN = sorted(SECRETS)


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("name", BUILT_IN)
def test_certified(name: str, check) -> None:
    """The connector passes this certification check."""
    check(Subject(registry.get(name), SECRETS[name], examples=25))


@pytest.mark.parametrize("name", BUILT_IN)
def test_built_in_connectors_sign_and_declare_timestamps(name: str) -> None:
    """Built-ins implement Signer and say whether their vendor signs a timestamp."""
    connector = registry.get(name)
    assert isinstance(connector, Signer)
    assert isinstance(connector.timestamped, bool)


class _Careless:
    """A connector that forgot the timestamp window and accepts anything signed with any secret."""

    name = "careless"
    timestamped = True
    Options = registry.get("stripe").options_model  # the options the wrapped verify reads

    def __init__(self) -> None:
        self._inner = registry.get("stripe")

    def verify(self, body, headers, secrets, now, options) -> None:
        self._inner.verify(body, headers, secrets, self._signed_at(headers), options)

    def _signed_at(self, headers) -> float:
        stamp = headers.get("stripe-signature", "").split(",")[0].removeprefix("t=")
        return float(stamp) if stamp.isdigit() else 0.0

    def parse(self, body, headers, options):
        return self._inner.parse(body, headers, options)

    def normalize(self, envelope):
        return self._inner.normalize(envelope)

    def sample(self, secret, now, options=None):
        return self._inner.sample(secret, now, options)


def test_certify_catches_a_missing_timestamp_window() -> None:
    """certify() fails a connector that ignores the clock, naming the window check."""
    with pytest.raises(CertificationError, match="check_timestamp_window"):
        certify(_Careless(), secret=SECRETS["stripe"], examples=5)


GENERIC = {
    "body-sha256-hex": {"header": "X-Signature", "dedupe_header": "X-Request-Id"},
    "prefixed-sha512-base64-iso": {
        "header": "X-Acme-Signature",
        "algorithm": "sha512",
        "encoding": "base64",
        "prefix": "v1=",
        "template": "{timestamp}.{body}",
        "timestamp_header": "X-Acme-Timestamp",
        "timestamp_format": "iso8601",
        "dedupe_pointer": "/meta/delivery_id",
        "type_pointer": "/type",
        "tolerance_s": 120,
    },
    "sha1-id-and-http-date": {
        "header": "X-Hook-Signature",
        "algorithm": "sha1",
        "template": "{id}:{timestamp}:{body}",
        "id_header": "X-Hook-Id",
        "timestamp_header": "Date",
        "timestamp_format": "http-date",
        "dedupe_header": "X-Hook-Id",
    },
}


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("config", sorted(GENERIC))
def test_generic_hmac_certified(config: str, check) -> None:
    """generic-hmac passes every check under each kind of source configuration."""
    options = GENERIC[config]
    check(
        Subject(
            registry.get("generic-hmac"),
            "generic-secret-0123456789",
            options,
            timestamped="timestamp_header" in options,
            examples=15,
        )
    )


class _UnboundTimestamp(_Careless):
    """A connector that checks a timestamp header's window but does not sign it."""

    name = "unbound"

    def __init__(self) -> None:
        self._inner = registry.get("github")

    def verify(self, body, headers, secrets, now, options) -> None:
        from connectors.signing import check_window, header, parse_unix

        self._inner.verify(body, headers, secrets, now, options)
        check_window(parse_unix(header(headers, "x-timestamp")), now, 300)

    def sample(self, secret, now, options=None):
        request = self._inner.sample(secret, now, options)
        return type(request)(request.body, {**request.headers, "X-Timestamp": str(int(now))})


class _Crashy(_Careless):
    """A connector whose normalize trusts the payload's shape."""

    name = "crashy"
    timestamped = True

    def verify(self, body, headers, secrets, now, options) -> None:
        self._inner.verify(body, headers, secrets, now, options)

    def normalize(self, envelope):
        return [] if envelope.payload["data"]["object"]["id"] else []


def test_certify_catches_an_unsigned_timestamp_header() -> None:
    """A timestamp header that can be changed without breaking the signature fails certification."""
    with pytest.raises(CertificationError, match="check_signing_headers_required_and_bound"):
        certify(_UnboundTimestamp(), secret="s3cret-s3cret", timestamped=True, examples=5)


def test_certify_catches_a_normalize_that_raises() -> None:
    """A normalize that raises on odd JSON fails the never-raises check, and only that one."""
    with pytest.raises(CertificationError) as failed:
        certify(_Crashy(), secret=SECRETS["stripe"], examples=10)
    assert "check_normalize_never_raises" in str(failed.value)
    assert "check_timestamp_window" not in str(failed.value)
