"""Certification kit: the checks every connector must pass against its own signed samples.

Run them all (raises CertificationError listing every failure)::

    from connectors.certify import certify
    certify(my_connector, secret="whsec_…", options={})

or one test per check with pytest::

    @pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
    def test_certified(check):
        check(Subject(my_connector, secret="whsec_…"))

The kit needs only the Connector protocol; it reads the optional capabilities the way Hookyard does
(`ConnectorSpec.of`). A connector that can `sign` gets the redelivery check (re-signed later, same
dedupe keys); `timestamped` (declared, or a `Subject` field) says whether the vendor signs a
timestamp, which decides between the window checks and the no-window check. `options` are checked
by the connector's `Options` model, as a source's are. The normalize fuzzing needs `hypothesis` (in
the `test` extra); the module imports without it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from connectors.base import DEFAULT_TOLERANCE_S, ConnectorSpec, Options, Parsed, SignedRequest, WindowOptions
from connectors.signing import lower_headers
from schemas.envelope import Envelope
from schemas.errors import InvalidPayload, VerificationError
from schemas.records import Record

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

NOW = 1_700_000_000
EXAMPLES = 40
CANONICAL_TYPES = (
    "payment.succeeded",
    "payment.failed",
    "refund.created",
    "order.created",
    "order.updated",
    "customer.created",
    "customer.updated",
    "ticket.created",
    "ticket.updated",
    "conversation.created",
    "conversation.updated",
    "conversation.message_created",
    "profile.updated",
    "marketing.email_opened",
)


class CertificationError(AssertionError):
    """A connector failed one or more certification checks."""


@dataclass(frozen=True)
class Subject:
    """The connector under certification, the secret its samples are signed with, its options."""

    connector: object
    secret: str
    options: Mapping[str, Any] | Options = field(default_factory=dict)
    timestamped: bool | None = None
    now: float = NOW
    examples: int = EXAMPLES
    spec: ConnectorSpec = field(init=False, repr=False)
    """The connector as Hookyard loads it: a wrong declaration fails here, as it would at start."""
    settings: Options = field(init=False, repr=False)
    """`options` validated by the connector's `Options` model."""

    def __post_init__(self) -> None:
        spec = ConnectorSpec.of(self.connector)
        options = self.options
        settings = options if isinstance(options, Options) else spec.load_options(options, "options")
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "settings", settings)

    @property
    def is_timestamped(self) -> bool:
        value = self.spec.timestamped if self.timestamped is None else self.timestamped
        if value is None:
            raise CertificationError(
                f"say whether {self.spec.name} signs a timestamp: "
                "a `timestamped` attribute or Subject(timestamped=…)"
            )
        return value

    @property
    def tolerance_s(self) -> float:
        """The timestamp window the options set (the default for a connector without the option)."""
        return self.settings.tolerance_s if isinstance(self.settings, WindowOptions) else DEFAULT_TOLERANCE_S

    def sample(self, now: float | None = None) -> SignedRequest:
        request = self.spec.sample(self.secret, self.now if now is None else now, self.settings)
        return SignedRequest(body=request.body, headers=lower_headers(request.headers))

    def verify(
        self, request: SignedRequest, secrets: list[str] | None = None, now: float | None = None
    ) -> None:
        self.spec.verify(
            request.body,
            request.headers,
            [self.secret] if secrets is None else secrets,
            self.now if now is None else now,
            self.settings,
        )

    def parse(self, request: SignedRequest) -> Parsed:
        return self.spec.parse(request.body, request.headers, self.settings)

    def rejects(self, request: SignedRequest, why: str, **kwargs: Any) -> VerificationError:
        """The VerificationError verify raises; any other outcome fails certification."""
        try:
            self.verify(request, **kwargs)
        except VerificationError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - anything but a VerificationError is the failure reported
            raise CertificationError(f"{why}: verify raised {type(exc).__name__}: {exc}") from exc
        raise CertificationError(f"{why}: verify accepted it")


def mutate_char(char: str) -> str:
    """A different character of the same class (digit, letter) so the value stays plausible."""
    if char.isdigit():
        return str((int(char) + 1) % 10)
    if "a" <= char <= "z":
        return chr((ord(char) - ord("a") + 1) % 26 + ord("a"))
    if "A" <= char <= "Z":
        return chr((ord(char) - ord("A") + 1) % 26 + ord("A"))
    return "x" if char != "x" else "y"


def other_secret(secret: str) -> str:
    middle = len(secret) // 2 if len(secret) > 12 else len(secret) - 1
    return secret[:middle] + mutate_char(secret[middle]) + secret[middle + 1 :]


def _without(request: SignedRequest, name: str) -> SignedRequest:
    return SignedRequest(body=request.body, headers={k: v for k, v in request.headers.items() if k != name})


def signing_headers(subject: Subject, request: SignedRequest) -> list[str]:
    """The headers verification depends on: the ones whose removal makes it fail."""
    names = []
    for name in request.headers:
        try:
            subject.verify(_without(request, name))
        except VerificationError:
            names.append(name)
        except Exception as exc:  # noqa: BLE001 - a missing header must be a VerificationError
            raise CertificationError(
                f"header {name} removed: verify raised {type(exc).__name__}: {exc}"
            ) from exc
    return names


# -- the checks -------------------------------------------------------------------------------------


def check_sample_verifies(subject: Subject) -> None:
    """A fresh sample verifies with its secret at its own time."""
    try:
        subject.verify(subject.sample())
    except VerificationError as exc:
        raise CertificationError(f"the sample does not verify: {exc.code}: {exc}") from exc


def check_sample_parses(subject: Subject) -> None:
    """A sample parses into deliveries with non-empty, distinct dedupe keys and types (or a reply)."""
    parsed = subject.parse(subject.sample())
    if not parsed.deliveries and parsed.reply is None:
        raise CertificationError("the sample parses to no delivery and no reply")
    keys = [d.dedupe_key for d in parsed.deliveries]
    if not all(isinstance(k, str) and k for k in keys) or len(set(keys)) != len(keys):
        raise CertificationError(f"dedupe keys must be distinct non-empty strings, got {keys!r}")
    if not all(isinstance(d.type, str) and d.type for d in parsed.deliveries):
        raise CertificationError("every delivery needs a type")


def check_samples_are_new_deliveries(subject: Subject) -> None:
    """Two samples are two deliveries: no dedupe key in common."""
    first = {d.dedupe_key for d in subject.parse(subject.sample()).deliveries}
    second = {d.dedupe_key for d in subject.parse(subject.sample()).deliveries}
    if first & second:
        raise CertificationError(f"two samples share dedupe keys {sorted(first & second)}")


def check_tampered_body_rejected(subject: Subject) -> None:
    """Every single-byte change, truncation, extension or replacement of the body is rejected."""
    request = subject.sample()
    body = request.body
    for index in range(len(body)):
        tampered = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
        subject.rejects(SignedRequest(tampered, request.headers), f"body byte {index} flipped")
    for tampered in (body[:-1], body + b" ", body + b"\n", b"", b"{", b"\xff\xfe"):
        subject.rejects(SignedRequest(tampered, request.headers), f"body replaced by {tampered[:20]!r}")


def check_signing_headers_required_and_bound(subject: Subject) -> None:
    """Some header carries the signature; removing any signing header, or changing any of its characters,
    is rejected (so a timestamp header is signed, not merely present)."""
    request = subject.sample()
    names = signing_headers(subject, request)
    if not names:
        raise CertificationError("no header is needed to verify: the sample verifies without a signature")
    for name in names:
        subject.rejects(_without(request, name), f"header {name} removed")
        subject.rejects(SignedRequest(request.body, {**request.headers, name: ""}), f"header {name} empty")
        value = request.headers[name]
        for index, char in enumerate(value):
            changed = value[:index] + mutate_char(char) + value[index + 1 :]
            subject.rejects(
                SignedRequest(request.body, {**request.headers, name: changed}),
                f"header {name} character {index} changed",
            )


def check_secrets(subject: Subject) -> None:
    """Another secret is rejected; rotation accepts any configured secret; no usable secret fails closed."""
    request = subject.sample()
    wrong = other_secret(subject.secret)
    subject.rejects(request, "signed with another secret", secrets=[wrong])
    subject.verify(request, secrets=[wrong, subject.secret])
    subject.verify(request, secrets=[subject.secret, wrong])
    for empty in ([], [""], [" "]):
        refused = subject.rejects(request, f"secrets {empty!r}", secrets=empty)
        if refused.code != "no_secret":
            raise CertificationError(
                f"secrets {empty!r} must fail closed with code no_secret, got {refused.code}"
            )


def check_timestamp_window(subject: Subject) -> None:
    """Timestamped vendors: accepted inside ±tolerance, rejected just outside either way.
    Others: no window at all (their replays are stopped by the dedupe key)."""
    request = subject.sample()
    if not subject.is_timestamped:
        for skew in (-30 * 86400, 30 * 86400):
            subject.verify(request, now=subject.now + skew)
        return
    window = subject.tolerance_s
    for edge in (-window + 1, window - 1):
        subject.verify(request, now=subject.now + edge)
    stale = subject.rejects(request, "verified after the window", now=subject.now + window + 1)
    future = subject.rejects(request, "verified before the window", now=subject.now - window - 1)
    if (stale.code, future.code) != ("stale_timestamp", "future_timestamp"):
        raise CertificationError(
            f"window errors must say stale_timestamp/future_timestamp, got {stale.code}/{future.code}"
        )


def check_redelivery_keeps_dedupe_keys(subject: Subject) -> None:
    """The same request parsed twice, or re-signed for a later attempt, yields the same dedupe keys."""
    request = subject.sample()
    keys = [d.dedupe_key for d in subject.parse(request).deliveries]
    if keys != [d.dedupe_key for d in subject.parse(request).deliveries]:
        raise CertificationError("parsing the same request twice gave different dedupe keys")
    if subject.spec.sign is None:
        return
    later = subject.now + 120
    retry = subject.spec.sign(request.body, request.headers, subject.secret, later, subject.settings)
    retry = SignedRequest(retry.body, lower_headers(retry.headers))
    subject.verify(retry, now=later)
    if [d.dedupe_key for d in subject.parse(retry).deliveries] != keys:
        raise CertificationError("a re-signed redelivery got different dedupe keys")


def _envelope(subject: Subject, event_type: str, payload: Any) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        source="certify",
        vendor=subject.spec.name,
        type=event_type,
        dedupe_key="certify",
        received_at=datetime.now(UTC),
        payload=payload,
    )


def _records(subject: Subject, event_type: str, payload: Any) -> list[Record]:
    try:
        records = subject.spec.normalize(_envelope(subject, event_type, payload))
    except InvalidPayload:  # a payload the schema refuses is reported as such: that is allowed
        return []
    except Exception as exc:  # noqa: BLE001 - reported with the input that caused it
        raise CertificationError(
            f"normalize raised {type(exc).__name__}: {exc} on {event_type} {str(payload)[:300]}"
        ) from exc
    if not isinstance(records, list) or not all(isinstance(r, Record) for r in records):
        raise CertificationError(f"normalize must return a list of records, got {records!r}")
    for record in records:
        record.data()
    return records


def check_normalize_sample(subject: Subject) -> None:
    """The sample's deliveries normalize without error, and unknown types yield no records."""
    for delivery in subject.parse(subject.sample()).deliveries:
        _records(subject, delivery.type, delivery.payload)
        if _records(subject, f"{subject.spec.name}.certify.unknown", delivery.payload):
            raise CertificationError("an unknown type must yield no records")


_MISSING = object()


def json_values() -> SearchStrategy[Any]:
    """Arbitrary JSON values. Hypothesis is imported here: the kit needs it only to fuzz normalize."""
    from hypothesis import strategies as st

    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    )


def mutated(value: Any) -> SearchStrategy[Any]:
    """The value with any subtree kept, replaced by arbitrary JSON, or (in objects) removed."""
    from hypothesis import strategies as st

    kept: SearchStrategy[Any]
    if isinstance(value, dict):
        inner = st.fixed_dictionaries({k: st.one_of(mutated(v), st.just(_MISSING)) for k, v in value.items()})
        kept = inner.map(lambda d: {k: v for k, v in d.items() if v is not _MISSING})
    elif isinstance(value, list):
        kept = st.tuples(*(mutated(v) for v in value)).map(list)
    else:
        kept = st.just(value)
    return st.one_of(kept, kept, kept, json_values())


def check_normalize_never_raises(subject: Subject) -> None:
    """normalize maps arbitrary JSON, and mangled copies of real payloads, to records or nothing."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    deliveries = subject.parse(subject.sample()).deliveries
    types = sorted({d.type for d in deliveries} | set(CANONICAL_TYPES) | {f"{subject.spec.name}.x"})
    # derandomized for reproducible verdicts; no shrinking, so a failing connector fails fast
    config = settings(
        max_examples=subject.examples,
        database=None,
        deadline=None,
        derandomize=True,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )

    @config
    @given(event_type=st.sampled_from(types), payload=json_values())
    def arbitrary(event_type: str, payload: Any) -> None:
        _records(subject, event_type, payload)

    _unwrap(arbitrary)
    if not deliveries:
        return

    @config
    @given(case=st.one_of(*(st.tuples(st.just(d.type), mutated(d.payload)) for d in deliveries)))
    def mangled(case: tuple[str, Any]) -> None:
        _records(subject, *case)

    _unwrap(mangled)


def _unwrap(run: Callable[[], None]) -> None:
    """Hypothesis groups distinct failures; report the first as the check's failure."""
    try:
        run()
    except ExceptionGroup as group:
        first = group.exceptions[0]
        raise CertificationError(f"{len(group.exceptions)} distinct failures, first: {first}") from group


CHECKS: tuple[Callable[[Subject], None], ...] = (
    check_sample_verifies,
    check_sample_parses,
    check_samples_are_new_deliveries,
    check_tampered_body_rejected,
    check_signing_headers_required_and_bound,
    check_secrets,
    check_timestamp_window,
    check_redelivery_keeps_dedupe_keys,
    check_normalize_sample,
    check_normalize_never_raises,
)


def certify(
    connector: object,
    *,
    secret: str,
    options: Mapping[str, Any] | Options | None = None,
    timestamped: bool | None = None,
    now: float = NOW,
    examples: int = EXAMPLES,
) -> None:
    """Run every check; raise CertificationError naming each one that failed."""
    subject = Subject(connector, secret, {} if options is None else options, timestamped, now, examples)
    failures = []
    for check in CHECKS:
        try:
            check(subject)
        except CertificationError as exc:
            failures.append(f"{check.__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - a crash is a failure of that check, reported with the rest
            failures.append(f"{check.__name__}: {type(exc).__name__}: {exc}")
    if failures:
        raise CertificationError(f"{subject.spec.name} failed certification:\n  " + "\n  ".join(failures))
