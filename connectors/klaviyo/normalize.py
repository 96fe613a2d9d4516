"""Klaviyo batches events in `data[]`: one delivery per item, keyed by its `external_id`.

Each item's `payload` has the shape of a Get Event API response (a JSON:API event, its profile and
metric possibly `included`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Delivery, Options, Parsed
from connectors.payloads import items, json_hash, load_object, obj, parse_time, text, validated
from schemas.envelope import Envelope
from schemas.errors import MalformedError
from schemas.records import MarketingEvent, Profile, Record

TOPIC_PREFIX = "event:klaviyo."
TOPICS = {
    "received_email": "marketing.email_received",
    "opened_email": "marketing.email_opened",
    "clicked_email": "marketing.email_clicked",
    "bounced_email": "marketing.email_bounced",
    "dropped_email": "marketing.email_dropped",
    "marked_email_as_spam": "marketing.email_marked_spam",
    "subscribed_to_email_marketing": "marketing.email_subscribed",
    "unsubscribed_from_email_marketing": "marketing.email_unsubscribed",
    "sent_sms": "marketing.sms_sent",
    "received_sms": "marketing.sms_received",
    "clicked_sms": "marketing.sms_clicked",
    "subscribed_to_sms_marketing": "marketing.sms_subscribed",
    "unsubscribed_from_sms_marketing": "marketing.sms_unsubscribed",
    "subscribed_to_list": "profile.subscribed_to_list",
    "unsubscribed_from_list": "profile.unsubscribed_from_list",
}


def topic_type(topic: str) -> str:
    name = topic.removeprefix(TOPIC_PREFIX)
    return TOPICS.get(name) or "klaviyo." + topic.replace(":", ".")


def parse(body: bytes, headers: Mapping[str, str], options: Options) -> Parsed:
    request = load_object(body)
    declared, sent_to = obj(request.get("meta")).get("klaviyo_webhook_id"), headers.get("klaviyo-webhook-id")
    if declared is not None and sent_to and declared != sent_to:
        # Klaviyo: "if these values do not match … you should not process the webhook"
        raise MalformedError(
            "meta.klaviyo_webhook_id does not match the Klaviyo-Webhook-Id header", code="webhook_id_mismatch"
        )
    data = request.get("data")
    if not isinstance(data, list):
        raise MalformedError("Klaviyo webhook body has no data[] array", code="missing_data")
    deliveries: dict[str, Delivery] = {}
    for item in data:
        # one odd item must not make Klaviyo retry (and lose) the whole batch: it gets a content key
        key = text(obj(item).get("external_id")) or f"item:{json_hash(item)}"
        event = obj(obj(obj(item).get("payload")).get("data"))
        when = parse_time(obj(event.get("attributes")).get("datetime"))
        kind = topic_type(text(obj(item).get("topic")) or "unknown")
        deliveries.setdefault(key, Delivery(dedupe_key=key, type=kind, payload=item, occurred_at=when))
    return Parsed(deliveries=list(deliveries.values()))


def included(payload: dict[str, Any], kind: str, wanted: str | None) -> dict[str, Any]:
    for resource in items(payload.get("included")):
        resource = obj(resource)
        if resource.get("type") == kind and (wanted is None or text(resource.get("id")) == wanted):
            return resource
    return {}


def related(event: dict[str, Any], kind: str) -> str | None:
    return text(obj(obj(obj(event.get("relationships")).get(kind)).get("data")).get("id"))


@validated
def normalize(envelope: Envelope) -> list[Record]:
    item = obj(envelope.payload)
    payload = obj(item.get("payload"))
    event = obj(payload.get("data"))
    external_id, topic = text(item.get("external_id")), text(item.get("topic"))
    if not envelope.type.startswith(("marketing.", "profile.")) or not external_id or not topic:
        return []
    attributes = obj(event.get("attributes"))
    props = obj(attributes.get("event_properties"))
    profile_id = related(event, "profile")
    person = obj(included(payload, "profile", profile_id).get("attributes"))
    metric = obj(included(payload, "metric", related(event, "metric")).get("attributes"))
    name = topic.removeprefix(TOPIC_PREFIX)
    records: list[Record] = [
        MarketingEvent(
            external_id=external_id,
            name=text(metric.get("name")) or name.replace("_", " ").capitalize(),
            channel=next((c for c in ("email", "sms", "push") if c in name.split("_")), None),
            profile_id=profile_id,
            email=text(person.get("email")) or text(props.get("$email")),
            campaign_id=text(props.get("$message")),
            flow_id=text(props.get("$flow")),
            subject=text(props.get("Subject")),
            occurred_at=parse_time(attributes.get("datetime")) or parse_time(attributes.get("timestamp")),
        )
    ]
    if profile_id and person:
        records.append(
            Profile(
                external_id=profile_id,
                email=text(person.get("email")),
                phone=text(person.get("phone_number")),
                first_name=text(person.get("first_name")),
                last_name=text(person.get("last_name")),
                updated_at=parse_time(person.get("updated")),
            )
        )
    return records
