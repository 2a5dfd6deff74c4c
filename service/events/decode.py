"""Turn one HTTP request (headers, body) into one typed event, whatever shape it came in."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from cloudevents.core.exceptions import BaseCloudEventException

from service.errors import EnvelopeError, UnsupportedMediaError
from service.events.fields import first, int64, mapping, text, timestamp
from service.events.pubsub import Message, interpret, message_from_json
from service.events.storage import split_source, storage_event
from service.models import Event, EventMeta, Ignored

PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
LEGACY_PUBSUB = "providers/cloud.pubsub/eventTypes/topic.publish"
LEGACY_PUBSUB_NEW = "google.pubsub.topic.publish"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
# Media types a JSON envelope may arrive with (an empty one is read as JSON too).
JSON_TYPES = frozenset({"", "application/json", "text/json", "text/plain"})
# GCS notification attributes, by the lower-case name an HTTP stack may turn them into.
GCS_ATTRIBUTES = {
    name.lower(): name
    for name in (
        "payloadFormat",
        "eventType",
        "bucketId",
        "objectId",
        "objectGeneration",
        "eventTime",
        "notificationConfig",
        "overwroteGeneration",
        "overwrittenByGeneration",
    )
}
# Header prefixes and names that are transport, never Pub/Sub attributes (unwrapped push).
TRANSPORT_PREFIXES = ("x-goog-", "x-cloud-", "x-forwarded-", "ce-", "x-envoy-", "sec-")
TRANSPORT_HEADERS = frozenset(
    {
        "host",
        "content-type",
        "content-length",
        "user-agent",
        "accept",
        "accept-encoding",
        "authorization",
        "connection",
        "traceparent",
        "tracestate",
        "forwarded",
        "via",
        "transfer-encoding",
        "expect",
        "from",
        "te",
        "upgrade",
        "cookie",
    }
)


def decode(headers: Mapping[str, str], body: bytes) -> Event:
    lowered = {k.lower(): v for k, v in headers.items()}
    media = lowered.get("content-type", "").split(";", 1)[0].strip().lower()
    if "ce-specversion" in lowered:
        return _cloudevent(lowered, body, shape="cloudevent-binary")
    if media == BATCH:
        raise UnsupportedMediaError("batched CloudEvents are not supported; send one per request")
    if media == STRUCTURED:
        return _cloudevent(lowered, body, shape="cloudevent-structured")
    if "x-goog-pubsub-message-id" in lowered:
        return _unwrapped_push(lowered, body)
    if media not in JSON_TYPES:
        raise UnsupportedMediaError("content type is not an event envelope")
    return _json_envelope(body)


def _cloudevent(headers: dict[str, str], body: bytes, *, shape: str) -> Event:
    try:
        event = from_http_event(HTTPMessage(headers, body))
    except (BaseCloudEventException, ValueError, TypeError, KeyError) as exc:
        raise EnvelopeError(f"not a valid CloudEvent: {type(exc).__name__}") from exc
    attrs = event.get_attributes()
    meta = EventMeta(
        event_id=str(attrs.get("id", "")),
        event_type=str(attrs.get("type", "")),
        source=str(attrs.get("source", "")),
        time=timestamp(attrs.get("time")),
        shape=shape,
    )
    data = event.get_data()
    if isinstance(data, bytes | str) and data:
        data = _json(data, "CloudEvent data")
    if meta.event_type.startswith("google.cloud.storage.object."):
        bucket, name = split_source(meta.source)
        subject = str(attrs.get("subject") or "")
        if subject.startswith("objects/"):
            name = subject[len("objects/") :]
        return storage_event(meta, data, bucket=bucket, name=name)
    if meta.event_type == PUBSUB_PUBLISHED:
        envelope = mapping(data, "CloudEvent data")
        return interpret(message_from_json(envelope.get("message")), meta)
    return Ignored(meta, "unknown event type")


def _unwrapped_push(headers: dict[str, str], body: bytes) -> Event:
    attributes = {
        GCS_ATTRIBUTES.get(name, name): value
        for name, value in headers.items()
        if name not in TRANSPORT_HEADERS and not name.startswith(TRANSPORT_PREFIXES)
    }
    message_id = headers["x-goog-pubsub-message-id"]
    meta = EventMeta(
        event_id=message_id,
        event_type="pubsub.push.unwrapped",
        source=headers.get("x-goog-pubsub-subscription-name", ""),
        time=timestamp(headers.get("x-goog-pubsub-publish-time")),
        shape="pubsub-push-unwrapped",
    )
    message = Message(body, attributes, message_id, meta.time)
    return interpret(message, meta)


def _json_envelope(body: bytes) -> Event:
    raw = _json(body, "request body")
    if not isinstance(raw, Mapping):
        raise EnvelopeError("request body is not a JSON object")
    if "message" in raw:
        return _wrapped_push(raw)
    if "eventType" in raw or "context" in raw:
        return _legacy(raw)
    raise EnvelopeError("request body is not a known event envelope")


def _wrapped_push(raw: Mapping[str, Any]) -> Event:
    message = message_from_json(raw["message"])
    attempt = first(raw, "deliveryAttempt", "delivery_attempt")
    meta = EventMeta(
        event_id=message.message_id or "",
        event_type="pubsub.push",
        source=text(raw.get("subscription"), "subscription") or "",
        time=message.publish_time,
        shape="pubsub-push",
        delivery_attempt=int64(attempt, "deliveryAttempt"),
    )
    if not meta.event_id:
        raise EnvelopeError("push message has no messageId")
    return interpret(message, meta)


def _legacy(raw: Mapping[str, Any]) -> Event:
    context = mapping(raw.get("context"), "context") if "context" in raw else raw
    resource = context.get("resource")
    if isinstance(resource, Mapping):
        resource = resource.get("name")
    event_type = text(context.get("eventType"), "eventType", required=True) or ""
    meta = EventMeta(
        event_id=text(context.get("eventId"), "eventId", required=True) or "",
        event_type=event_type,
        source=str(resource or ""),
        time=timestamp(context.get("timestamp")),
        shape="legacy-background",
    )
    data = raw.get("data")
    if event_type in (LEGACY_PUBSUB, LEGACY_PUBSUB_NEW):
        return interpret(message_from_json(mapping(data, "data")), meta)
    if event_type.startswith("google.storage.object."):
        bucket, name = split_source("/" + meta.source)
        return storage_event(meta, data, bucket=bucket, name=name)
    return Ignored(meta, "unknown event type")


def _json(data: bytes | str, what: str) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise EnvelopeError(f"{what} is not JSON") from exc
