"""Pub/Sub messages: GCS notifications, Cloud Scheduler sweep requests, or nothing we know."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.errors import EnvelopeError
from service.events.fields import b64decode, first, int64, str_mapping, text, timestamp
from service.events.storage import storage_event
from service.models import Event, EventMeta, Ignored, SweepRequested


@dataclass(frozen=True)
class Message:
    data: bytes
    attributes: dict[str, str]
    message_id: str | None
    publish_time: datetime | None


def message_from_json(raw: Any) -> Message:
    """A PubsubMessage JSON object, with camelCase or snake_case keys."""
    if not isinstance(raw, Mapping):
        raise EnvelopeError("message is not an object")
    return Message(
        data=b64decode(raw.get("data"), "message.data"),
        attributes=str_mapping(raw.get("attributes"), "message.attributes"),
        message_id=text(first(raw, "messageId", "message_id"), "message.messageId"),
        publish_time=timestamp(first(raw, "publishTime", "publish_time")),
    )


def interpret(message: Message, meta: EventMeta) -> Event:
    """What a message means: a GCS notification, a sweep request, or an ignored message."""
    attrs = message.attributes
    if attrs.get("payloadFormat") == "JSON_API_V1" or "objectId" in attrs:
        return _gcs_notification(message, meta)
    if attrs.get("payloadFormat") == "NONE" and "eventType" in attrs:
        return _gcs_notification(message, meta)
    return _scheduler(message, meta)


def _gcs_notification(message: Message, meta: EventMeta) -> Event:
    attrs = message.attributes
    event_type = attrs.get("eventType", "")
    meta = EventMeta(
        event_id=meta.event_id,
        event_type=event_type or meta.event_type,
        source=meta.source,
        time=timestamp(attrs.get("eventTime")) or meta.time,
        shape=meta.shape + "+gcs-notification",
        delivery_attempt=meta.delivery_attempt,
    )
    data: Any = None
    if message.data:
        try:
            data = json.loads(message.data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EnvelopeError("GCS notification data is not JSON") from exc
    return storage_event(
        meta,
        data,
        bucket=attrs.get("bucketId"),
        name=attrs.get("objectId"),
        generation=int64(attrs.get("objectGeneration"), "objectGeneration"),
    )


def _scheduler(message: Message, meta: EventMeta) -> Event:
    payload: Any = None
    if message.data:
        try:
            payload = json.loads(message.data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return Ignored(meta, "message data is not JSON")
    if not isinstance(payload, Mapping):
        payload = {}
    # Attributes may carry the request when the data is empty (a Scheduler job's attributes).
    merged = {**message.attributes, **payload}
    pipeline = merged.get("pipeline")
    if not isinstance(pipeline, str) or not pipeline:
        return Ignored(meta, "message names no pipeline")
    date = merged.get("date") or merged.get("logical_date")
    prefix = merged.get("prefix")
    return SweepRequested(
        meta,
        pipeline=pipeline,
        date=str(date) if date else None,
        prefix=str(prefix) if prefix else None,
    )
