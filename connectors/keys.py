"""Redis keys of the vendor API layer, in one place.

`{vendor:account}` is a Redis Cluster hash tag: every key of one vendor account lands in the same
slot, so one Lua script may touch all of an account's limits at once.
"""

from __future__ import annotations

PREFIX = "hookyard"


def account_tag(vendor: str, account: str) -> str:
    return f"{{{vendor}:{account}}}"


def budget_key(vendor: str, account: str, limit: str) -> str:
    """The GCRA state (theoretical arrival time) of one limit of one vendor account."""
    return f"{PREFIX}:budget:{account_tag(vendor, account)}:{limit}"


def breaker_key(vendor: str, account: str) -> str:
    """The circuit breaker hash of one vendor account."""
    return f"{PREFIX}:breaker:{account_tag(vendor, account)}"
