"""The one error tree of Hookyard.

HookyardError
├── ConfigError            bad configuration; the process refuses to start (exit 2)
├── IngressError           a request is refused; carries the HTTP status and a reason code
│   ├── VerificationError  401: signature, timestamp or missing signing header
│   ├── MalformedError     400: the body or a required header cannot be understood
│   ├── UnknownSourceError 404
│   ├── TooLargeError      413
│   └── UnsupportedMediaError 415
└── ProcessingError        raised while a worker handles an event
    ├── TransientError     try again later (network, timeout, 5xx, 429, database hiccup)
    │   ├── Throttled          a rate budget or the vendor says wait longer than a call may sleep
    │   ├── CircuitOpen        the vendor account's circuit breaker is open: fail fast until the probe
    │   └── MalformedAnswer    a vendor's 2xx whose body is not the JSON it should be
    └── PermanentError     retrying cannot help: dead-letter at once
        ├── InvalidPayload           a known event the canonical schema refuses
        ├── ReauthorizationRequired  the vendor refused our credentials (401/403)
        ├── PaginationLoop           a vendor handed back a cursor it had already given
        └── WorkerLost               every attempt died with its worker (killed, out of memory)
"""

from __future__ import annotations


class HookyardError(Exception):
    """Root of every error Hookyard raises on purpose."""


class ConfigError(HookyardError):
    """The configuration cannot be used; the message names file, source and field."""


class IngressError(HookyardError):
    """A webhook request is refused with `status` and a machine-readable `code`."""

    status = 400
    code = "bad_request"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code

    def response_headers(self) -> dict[str, str]:
        """Headers the refusal carries besides the JSON body (e.g. Allow on a 405)."""
        return {}


class VerificationError(IngressError):
    status = 401
    code = "invalid_signature"


class MalformedError(IngressError):
    status = 400
    code = "malformed"


class UnknownSourceError(IngressError):
    status = 404
    code = "unknown_source"


class MethodNotAllowedError(IngressError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, detail: str, *, allow: tuple[str, ...]) -> None:
        super().__init__(detail)
        self.allow = allow

    def response_headers(self) -> dict[str, str]:
        return {"allow": ", ".join(self.allow)}


class TooLargeError(IngressError):
    status = 413
    code = "too_large"


class UnsupportedMediaError(IngressError):
    status = 415
    code = "unsupported_media_type"


class HeadersTooLargeError(IngressError):
    status = 431
    code = "headers_too_large"


class ProcessingError(HookyardError):
    """Raised while a worker processes an event."""


class TransientError(ProcessingError):
    """Worth retrying; `retry_after_s` overrides the computed backoff when the remote said so."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Throttled(TransientError):
    """A rate budget (ours or the vendor's) asks for a wait longer than a call may sleep in process."""


class CircuitOpen(TransientError):
    """The vendor account's breaker is open; `retry_after_s` is the time until the next probe."""


class MalformedAnswer(TransientError):
    """A 2xx whose body does not parse. Transient: a truncated body or a proxy's error page clears up,
    and attempts are bounded, so one that never does still ends in the dead letters."""


class PermanentError(ProcessingError):
    """Retrying cannot help; the event goes to the dead letters."""


class ReauthorizationRequired(PermanentError):
    """The vendor refused our credentials; the source is flagged until someone re-authorizes it."""


class InvalidPayload(PermanentError):
    """A known event type whose payload does not fit its canonical record (fix it with `dlq edit`)."""


class WorkerLost(PermanentError):
    """The worker running the event died on every attempt it was given: it would take the next
    one down too."""


class PaginationLoop(PermanentError):
    """A page handed back a cursor (or the same page) already seen: following it would never end.
    Permanent: resuming from the saved cursor would meet the same page again."""
