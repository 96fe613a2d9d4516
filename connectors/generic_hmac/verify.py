"""Generic HMAC: one signature header over a template, configured per source through its options
(see `connectors/generic_hmac/options.py` for each of them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from connectors.generic_hmac.options import Options


def verify(
    body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, options: Options
) -> None:
    options.scheme.verify(body, headers, secrets, now, options.tolerance_s)
