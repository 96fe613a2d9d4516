"""Deliver a processed event downstream, once in effect: the event id is the Idempotency-Key."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx

from events.sources import Forward
from schemas.envelope import Envelope
from schemas.errors import PermanentError, ReauthorizationRequired, TransientError
from schemas.records import Record
from schemas.retry import Verdict, classify_status, delay_from_headers


def event_body(envelope: Envelope, items: Sequence[Record]) -> dict[str, Any]:
    """The event and its records as JSON: what a forward (or an `http.post` without a body) sends."""
    return {
        "id": envelope.id,
        "source": envelope.source,
        "vendor": envelope.vendor,
        "type": envelope.type,
        "occurred_at": envelope.occurred_at.isoformat() if envelope.occurred_at else None,
        "received_at": envelope.received_at.isoformat(),
        "payload": envelope.payload,
        "records": [{"kind": r.kind, **r.data()} for r in items],
    }


def forward(client: httpx.Client, target: Forward, envelope: Envelope, items: Sequence[Record]) -> None:
    """POST the envelope and its records; map the answer onto the error tree."""
    body = event_body(envelope, items)
    headers = {name: value.get_secret_value() for name, value in target.headers.items()}
    headers.update({"Idempotency-Key": envelope.id, "Hookyard-Event-Type": envelope.type})
    url = target.url.get_secret_value()
    try:
        resp = client.post(url, json=body, headers=headers, timeout=target.timeout_s)
    except httpx.TransportError as exc:
        # httpx's message may quote the URL: say what failed by class, the URL by its safe form
        raise TransientError(f"forward to {target.safe_url} failed: {type(exc).__name__}") from exc
    if resp.is_success:
        return
    verdict = classify_status(resp.status_code)
    message = f"forward to {target.safe_url} answered {resp.status_code}: {resp.text[:300]}"
    if verdict is Verdict.RETRY:
        raise TransientError(message, retry_after_s=delay_from_headers(resp.headers, time.time()))
    if verdict is Verdict.REAUTHORIZE:
        raise ReauthorizationRequired(message)
    raise PermanentError(message)
