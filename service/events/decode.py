"""Turn one HTTP request (headers, body) into one typed event, whatever shape it came in.

Refusals raise EnvelopeError (HTTP 400: not a decodable envelope) or UnsupportedMediaError
(HTTP 415). A well-formed envelope whose content we deliberately do not ingest (a deletion, an
unknown event type, a message naming no pipeline) becomes ``Ignored`` with a fixed reason, so
the platform stops redelivering it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.errors import EnvelopeError, UnsupportedMediaError
from service.events.cloudevent import CloudEvent, from_binary, from_structured, media_type
from service.events.event_types import GCS_ATTRIBUTES, PUBSUB_PUBLISHED, STORAGE_PREFIX
from service.events.fields import first, lenient_int, mapping, parse_json, text, timestamp
from service.events.legacy import decode_legacy
from service.events.pubsub import Message, interpret, message_from_json
from service.events.storage import split_source, storage_event
from service.models import Event, EventMeta, Ignored

STRUCTURED = "application/cloudevents+json"
# Media types a JSON envelope may arrive with (none at all is read as JSON too).
JSON_TYPES = frozenset({"", "application/json", "text/json", "text/plain"})
UNKNOWN_TYPE = "unknown event type"
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
    media = media_type(lowered.get("content-type"))
    if media.startswith("application/cloudevents-batch"):
        raise UnsupportedMediaError("batched CloudEvents are not supported; send one per request")
    if media.startswith("application/cloudevents"):
        if media != STRUCTURED:
            raise UnsupportedMediaError("structured CloudEvents are accepted in JSON format only")
        return _cloudevent(from_structured(body), "cloudevent-structured")
    if "ce-specversion" in lowered:
        return _cloudevent(from_binary(lowered, body), "cloudevent-binary")
    if "x-goog-pubsub-message-id" in lowered:
        return _unwrapped_push(lowered, body)
    if media not in JSON_TYPES:
        raise UnsupportedMediaError("content type is not an event envelope")
    return _json_envelope(body)


def _cloudevent(event: CloudEvent, shape: str) -> Event:
    meta = EventMeta(event.id, event.type, event.source, event.time, shape)
    if event.type.startswith(STORAGE_PREFIX):
        bucket, name = split_source(event.source)
        # Eventarc names the object in the subject; older producers only in the source path.
        if event.subject and event.subject.startswith("objects/"):
            name = event.subject[len("objects/") :]
        return storage_event(meta, event.data, bucket=bucket, name=name)
    if event.type == PUBSUB_PUBLISHED:
        envelope = mapping(event.data, "CloudEvent data")
        return interpret(message_from_json(envelope.get("message")), meta)
    return Ignored(meta, UNKNOWN_TYPE)


def _unwrapped_push(headers: dict[str, str], body: bytes) -> Event:
    """``--push-no-wrapper`` with metadata: the body is the data, attributes are headers."""
    attributes = {
        GCS_ATTRIBUTES.get(name, name): _header_text(value)
        for name, value in headers.items()
        if name not in TRANSPORT_HEADERS and not name.startswith(TRANSPORT_PREFIXES)
    }
    message_id = text(
        headers["x-goog-pubsub-message-id"], "x-goog-pubsub-message-id", required=True
    )
    meta = EventMeta(
        event_id=message_id or "",
        event_type="pubsub.push.unwrapped",
        source=headers.get("x-goog-pubsub-subscription-name", ""),
        time=timestamp(headers.get("x-goog-pubsub-publish-time")),
        shape="pubsub-push-unwrapped",
    )
    return interpret(Message(body, attributes, message_id, meta.time), meta)


def _header_text(value: str) -> str:
    """A header value as the sender's UTF-8 text (HTTP stacks hand headers over as latin-1)."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _json_envelope(body: bytes) -> Event:
    raw = parse_json(body, "request body")
    if not isinstance(raw, Mapping):
        raise EnvelopeError("request body is not a JSON object")
    if "message" in raw:
        return _wrapped_push(raw)
    if "eventType" in raw or "context" in raw:
        return decode_legacy(raw)
    raise EnvelopeError("request body is not a known event envelope")


def _wrapped_push(raw: Mapping[str, Any]) -> Event:
    """A Pub/Sub push envelope: ``{"message": {...}, "subscription": ...}``."""
    message = message_from_json(raw["message"])
    if not message.message_id:
        raise EnvelopeError("push message has no messageId")
    meta = EventMeta(
        event_id=message.message_id,
        event_type="pubsub.push",
        source=text(raw.get("subscription"), "subscription") or "",
        time=message.publish_time,
        shape="pubsub-push",
        delivery_attempt=lenient_int(first(raw, "deliveryAttempt", "delivery_attempt")),
    )
    return interpret(message, meta)
