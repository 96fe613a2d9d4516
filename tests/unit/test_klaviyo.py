"""Klaviyo: HTTP-date timestamps, batched data[] split per item, marketing events and profiles."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

import connectors.klaviyo as connector
from connectors.klaviyo.sample import WEBHOOK_ID
from schemas.envelope import Envelope
from schemas.errors import MalformedError, VerificationError
from schemas.records import MarketingEvent, Profile
from tests.helpers import NOW, parse, verify, with_headers

SECRET = "supersecretkey_1234567890"


def _body(*items: dict, webhook_id: str = WEBHOOK_ID) -> bytes:
    return orjson.dumps(
        {"data": list(items), "meta": {"klaviyo_account_id": "XyZ123", "klaviyo_webhook_id": webhook_id}}
    )


def _item(external_id: str, topic: str = "event:klaviyo.opened_email") -> dict:
    return {"external_id": external_id, "topic": topic, "payload": {}}


def test_batch_yields_one_delivery_per_item() -> None:
    """Each data[] item is its own delivery, keyed by external_id, with a canonical type."""
    body = _body(
        _item("evt_1"),
        _item("evt_2", "event:klaviyo.unsubscribed_from_email_marketing"),
        _item("evt_3", "event:custom.placed_order"),
    )
    request = connector.sign(body, {"Klaviyo-Webhook-Id": WEBHOOK_ID}, SECRET, NOW)
    verify("klaviyo", request, [SECRET])
    deliveries = parse("klaviyo", request).deliveries
    assert [(d.dedupe_key, d.type) for d in deliveries] == [
        ("evt_1", "marketing.email_opened"),
        ("evt_2", "marketing.email_unsubscribed"),
        ("evt_3", "klaviyo.event.custom.placed_order"),
    ]


def test_repeated_and_id_less_items_do_not_sink_the_batch() -> None:
    """A repeated external_id is stored once; an item without one gets a content key."""
    request = connector.sign(
        _body(_item("evt_1"), _item("evt_1"), {"topic": "event:klaviyo.sent_sms"}), {}, SECRET, NOW
    )
    keys = [d.dedupe_key for d in parse("klaviyo", request).deliveries]
    assert keys[0] == "evt_1" and len(keys) == 2 and keys[1].startswith("item:")


def test_webhook_id_mismatch_is_not_processed() -> None:
    """meta.klaviyo_webhook_id must equal the Klaviyo-Webhook-Id header."""
    request = connector.sign(
        _body(_item("evt_1"), webhook_id="01OTHER"), {"Klaviyo-Webhook-Id": WEBHOOK_ID}, SECRET, NOW
    )
    with pytest.raises(MalformedError, match="does not match"):
        parse("klaviyo", request)


@pytest.mark.parametrize("body", [b'{"meta": {}}', b'{"data": {"external_id": "x"}}', b"[]"])
def test_bodies_without_a_data_array_are_malformed(body: bytes) -> None:
    """A verified body without data[] cannot be split into events."""
    with pytest.raises(MalformedError):
        connector.parse(body, {}, {})


@pytest.mark.parametrize("stamp", ["1700000000", "2023-11-14T22:13:20Z", "Tue, 14 Apr 2026 03:50:12"])
def test_timestamp_must_be_an_http_date_in_gmt(stamp: str) -> None:
    """Unix seconds, ISO-8601 or a zoneless date are not Klaviyo timestamps."""
    request = with_headers(connector.sample(SECRET, NOW), klaviyo_timestamp=stamp)
    with pytest.raises(VerificationError):
        verify("klaviyo", request, [SECRET])


def test_sample_normalizes_to_marketing_events_and_profiles() -> None:
    """Each item gives a MarketingEvent (metric name, channel, subject, time) and its Profile."""
    request = connector.sample(SECRET, NOW)
    first = parse("klaviyo", request).deliveries[0]
    envelope = Envelope(
        id="e",
        source="kl",
        vendor="klaviyo",
        type=first.type,
        dedupe_key=first.dedupe_key,
        received_at=datetime.now(UTC),
        payload=first.payload,
    )
    event, profile = connector.normalize(envelope)
    when = datetime.fromtimestamp(NOW - 5, UTC)
    assert event == MarketingEvent(
        external_id=first.dedupe_key,
        name="Received Email",
        channel="email",
        profile_id="01GDDKASAP8TKDDA2GRZDSVP4H",
        email="sarah.mason@klaviyo-demo.com",
        campaign_id="01HQ4T5Y1PZJ0ZCN6JYFB2G1XW",
        subject="Spring sale starts now",
        occurred_at=when,
    )
    assert profile == Profile(
        external_id="01GDDKASAP8TKDDA2GRZDSVP4H",
        email="sarah.mason@klaviyo-demo.com",
        phone="+15005550006",
        first_name="Sarah",
        last_name="Mason",
        updated_at=when,
    )
    assert first.occurred_at == when
