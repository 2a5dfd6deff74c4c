"""Pub/Sub messages: GCS notifications, sweep requests, work messages, or nothing we know."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from service.errors import EnvelopeError
from service.events.event_types import NOTIFICATION_MARKERS
from service.events.fields import b64decode, first, int64, parse_json, str_mapping, text, timestamp
from service.events.storage import storage_event
from service.events.work import decode_work, is_work
from service.models import Event, EventMeta, Ignored, SweepRequested

# A logical date as a scheduler message gives it: the day only, ISO 8601.
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


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
    if "eventType" in attrs and any(marker in attrs for marker in NOTIFICATION_MARKERS):
        return _gcs_notification(message, meta)
    if is_work(attrs):
        return decode_work(message.data, meta)
    return _scheduler(message, meta)


def _gcs_notification(message: Message, meta: EventMeta) -> Event:
    """A Cloud Storage Pub/Sub notification; with payloadFormat NONE the attributes say it all."""
    attrs = message.attributes
    meta = EventMeta(
        event_id=meta.event_id,
        event_type=attrs["eventType"],
        source=meta.source,
        time=timestamp(attrs.get("eventTime")) or meta.time,
        shape=meta.shape + "+gcs-notification",
        delivery_attempt=meta.delivery_attempt,
    )
    data: Any = None
    if message.data.strip() and attrs.get("payloadFormat") != "NONE":
        data = parse_json(message.data, "GCS notification data")
    return storage_event(
        meta,
        data,
        bucket=attrs.get("bucketId"),
        name=attrs.get("objectId"),
        generation=int64(attrs.get("objectGeneration"), "objectGeneration"),
    )


def _scheduler(message: Message, meta: EventMeta) -> Event:
    """A Cloud Scheduler job's message: JSON data (or attributes) naming a pipeline."""
    payload: Any = {}
    if message.data.strip():
        try:
            payload = parse_json(message.data, "message data")
        except EnvelopeError:
            return Ignored(meta, "message data is not JSON")
    if not isinstance(payload, Mapping):
        return Ignored(meta, "message data is not a JSON object")
    # Attributes may carry the request when the data is empty (a Scheduler job's attributes).
    merged = {**message.attributes, **payload}
    pipeline = merged.get("pipeline")
    if not isinstance(pipeline, str) or not pipeline.strip():
        return Ignored(meta, "message names no pipeline")
    # An empty date or prefix means none (a job template with a blank field).
    day = first(merged, "date", "logical_date", "logicalDate") or None
    prefix = merged.get("prefix") or None
    if day is not None and not _is_date(day):
        return Ignored(meta, "date is not YYYY-MM-DD")
    if prefix is not None and not isinstance(prefix, str):
        return Ignored(meta, "prefix is not a string")
    return SweepRequested(meta, pipeline=pipeline.strip(), date=day, prefix=prefix)


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not ISO_DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True
