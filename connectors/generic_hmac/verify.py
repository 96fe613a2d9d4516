"""Generic HMAC: one signature header over a template, configured per source through options.

header            signature header name (required), e.g. "X-Signature"
algorithm         sha1 | sha256 (default) | sha512
encoding          hex (default) | base64
prefix            text before the signature, e.g. "sha256=" (default none)
template          what is signed, with {body} once and optionally {timestamp} and {id}
                  (default "{body}"), e.g. "{timestamp}.{body}"
timestamp_header  header carrying the signed timestamp; turns on the ±tolerance_s window
timestamp_format  unix (default) | iso8601 | http-date
id_header         header carrying the {id} the template signs
tolerance_s       the window, 300 s by default
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors.signing import Scheme
from schemas.errors import ConfigError

FIELDS = ("algorithm", "encoding", "prefix", "template", "timestamp_format")


def _header_name(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"generic-hmac option {key} must be a header name, got {value!r}")
    return value.strip().lower()


def scheme(options: Mapping[str, Any]) -> Scheme:
    """The source's signing scheme; ConfigError names what is wrong with its options."""
    signature_header = _header_name(options, "header")
    if signature_header is None:
        raise ConfigError("generic-hmac needs options.header, the name of the signature header")
    fields = {name: options[name] for name in FIELDS if name in options}
    bad = [name for name, value in fields.items() if not isinstance(value, str)]
    if bad:
        raise ConfigError(f"generic-hmac options {', '.join(bad)} must be strings")
    return Scheme(
        signature_header=signature_header,
        timestamp_header=_header_name(options, "timestamp_header"),
        id_header=_header_name(options, "id_header"),
        **fields,
    )


def verify(
    body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, options: Mapping[str, Any]
) -> None:
    scheme(options).verify(body, headers, secrets, now, options)
