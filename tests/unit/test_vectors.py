"""Every signature vector from vendor docs and SDKs, run against its connector."""

from __future__ import annotations

import pytest

from connectors.base import SignedRequest
from schemas.errors import VerificationError
from tests.helpers import to_unix, vectors, verify

STALE = {"stale_timestamp", "future_timestamp"}


def _id(case: dict) -> str:
    return f"{case['vendor']}-{case['expect']}-{case['note'][:40]}"


@pytest.mark.parametrize("case", vectors(), ids=_id)
def test_vector(case: dict) -> None:
    """A vector verifies, or is refused for the stated reason (bad signature vs. stale timestamp)."""
    request = SignedRequest(body=case["body"].encode(), headers=case["headers"])
    now = to_unix(case.get("now"))
    if case["expect"] == "valid":
        verify(case["vendor"], request, [case["secret"]], now)
        return
    with pytest.raises(VerificationError) as refused:
        verify(case["vendor"], request, [case["secret"]], now)
    assert (refused.value.code in STALE) == (case["expect"] == "stale")


@pytest.mark.parametrize("case", [c for c in vectors() if c["expect"] == "valid"], ids=_id)
def test_vector_rejects_other_secret_and_empty_secrets(case: dict) -> None:
    """A valid vector fails under another secret, and with no usable secret at all."""
    request = SignedRequest(body=case["body"].encode(), headers=case["headers"])
    now = to_unix(case.get("now"))
    other = case["secret"][:-2] + ("AA" if case["secret"][-2:] != "AA" else "BB")
    with pytest.raises(VerificationError):
        verify(case["vendor"], request, [other], now)
    for empty in ([], [""], ["  "]):
        with pytest.raises(VerificationError) as refused:
            verify(case["vendor"], request, empty, now)
        assert refused.value.code == "no_secret"


@pytest.mark.parametrize("case", [c for c in vectors() if c["expect"] == "valid"], ids=_id)
def test_vector_rotation_any_secret_matches(case: dict) -> None:
    """With an old and a new secret configured, a request signed with either verifies."""
    request = SignedRequest(body=case["body"].encode(), headers=case["headers"])
    verify(
        case["vendor"],
        request,
        ["whsec_b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZA==", case["secret"]],
        to_unix(case.get("now")),
    )
