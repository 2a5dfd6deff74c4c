"""Legacy background-function events (before CloudEvents), in both of their JSON layouts.

``{"context": {"eventId", "timestamp", "eventType", "resource": {...}}, "data": {...}}``, or the
older flat ``{"eventId", "timestamp", "eventType", "resource": "...", "data": {...}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.events.event_types import LEGACY_PUBSUB_TYPES, LEGACY_STORAGE_PREFIX
from service.events.fields import mapping, text, timestamp
from service.events.pubsub import interpret, message_from_json
from service.events.storage import split_source, storage_event
from service.models import Event, EventMeta, Ignored


def decode_legacy(raw: Mapping[str, Any]) -> Event:
    context = mapping(raw.get("context"), "context") if "context" in raw else raw
    resource = context.get("resource")
    if isinstance(resource, Mapping):
        resource = resource.get("name")
    event_type = text(context.get("eventType"), "eventType", required=True) or ""
    meta = EventMeta(
        event_id=text(context.get("eventId"), "eventId", required=True) or "",
        event_type=event_type,
        source=text(resource, "resource") or "",
        time=timestamp(context.get("timestamp")),
        shape="legacy-background",
    )
    data = raw.get("data")
    if event_type in LEGACY_PUBSUB_TYPES:
        return interpret(message_from_json(mapping(data, "data")), meta)
    if event_type.startswith(LEGACY_STORAGE_PREFIX):
        # The resource is "projects/_/buckets/B/objects/NAME".
        bucket, name = split_source("/" + meta.source)
        return storage_event(meta, data, bucket=bucket, name=name)
    return Ignored(meta, "unknown event type")
