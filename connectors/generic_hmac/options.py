"""A generic-hmac source's options: its whole signing scheme, and where ids, types and times are read.

Checked when the sources file loads: a scheme that cannot be sound (no {body}, an unsigned timestamp,
an unknown algorithm) or a malformed JSON pointer stops the process there, never at a request.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, PrivateAttr, model_validator

from connectors.base import HeaderName, WindowOptions
from connectors.payloads import pointer_tokens
from connectors.signing import Scheme
from schemas.errors import ConfigError


def _pointer(path: str) -> str:
    pointer_tokens(path)  # raises ValueError on a malformed pointer
    return path


Pointer = Annotated[str, AfterValidator(_pointer)]
TypeName = Annotated[str, Field(min_length=1)]


class Options(WindowOptions):
    """One signature header over a template of {body}, {timestamp} and {id}; the window (tolerance_s)
    applies when a timestamp header is set."""

    header: HeaderName
    """The signature header (required), e.g. "X-Signature"."""
    algorithm: str = "sha256"
    """sha1 | sha256 | sha512."""
    encoding: str = "hex"
    """hex | base64."""
    prefix: str = ""
    """Text before the signature, e.g. "sha256="."""
    template: str = "{body}"
    """What is signed: {body} once, optionally {timestamp} and {id}, e.g. "{timestamp}.{body}"."""
    timestamp_header: HeaderName | None = None
    """The header carrying the signed timestamp; turns on the ±tolerance_s window."""
    timestamp_format: str = "unix"
    """unix | iso8601 | http-date."""
    id_header: HeaderName | None = None
    """The header carrying the {id} the template signs."""
    dedupe_header: HeaderName | None = None
    """The header holding the delivery id (e.g. "X-Request-Id"); else `dedupe_pointer`, else a body hash."""
    dedupe_pointer: Pointer | None = None
    """A JSON pointer to the delivery id in the body (e.g. "/id")."""
    type_pointer: Pointer | None = None
    """A JSON pointer to the event type (e.g. "/type"); else `type`, else "event"."""
    type: TypeName | None = None
    """A fixed type for every delivery of the source."""
    type_prefix: TypeName = "generic"
    """Prefix of a type that `types` does not map: `<type_prefix>.<the sender's type>`."""
    types: dict[str, TypeName] = {}
    """The sender's type names mapped to canonical ones."""
    time_pointer: Pointer | None = None
    """A JSON pointer to when the event occurred."""

    _scheme: Scheme = PrivateAttr()

    @model_validator(mode="after")
    def _sound_scheme(self) -> Options:
        try:
            self._scheme = Scheme(
                signature_header=self.header.lower(),
                template=self.template,
                algorithm=self.algorithm,
                encoding=self.encoding,
                prefix=self.prefix,
                timestamp_header=self.timestamp_header.lower() if self.timestamp_header else None,
                timestamp_format=self.timestamp_format,
                id_header=self.id_header.lower() if self.id_header else None,
            )
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def scheme(self) -> Scheme:
        """The signing scheme these options describe, built once when they were validated."""
        return self._scheme
