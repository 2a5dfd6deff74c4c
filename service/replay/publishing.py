"""Recorded events published as the Pub/Sub messages that carry them (``replay --to-topic``).

Each recorded event goes out as the message that would have brought it, so it travels the real
delivery path (subscription, push, retries): the very message of a recorded push (wrapped or
unwrapped), of an Eventarc messagePublished or of a legacy publish; a GCS notification
(JSON_API_V1, the object resource as data) for a storage finalize; a scheduler message for a
sweep. Events no message could carry (a deletion, an unknown type) are skipped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from service.errors import EnvelopeError, IngestError
from service.events.decode import TRANSPORT_HEADERS, TRANSPORT_PREFIXES
from service.events.event_types import GCS_ATTRIBUTES, LEGACY_PUBSUB_TYPES, PUBSUB_PUBLISHED
from service.events.pubsub import Message, message_from_json
from service.models import Ignored, ObjectFinalized, SweepRequested
from service.ports import MessageSink
from service.recording import RecordedRequest, event_of
from service.samples import resource_from_info, storage_notification_push


class Publication(StrEnum):
    """What became of one recorded event."""

    PUBLISHED = "published"
    WOULD_PUBLISH = "would-publish"  # a dry run
    SKIPPED = "skipped"  # no message can carry it
    ERROR = "error"  # not an event, or the topic refused it


def carried_message(request: RecordedRequest) -> Message | None:
    """The Pub/Sub message a recorded push, Eventarc messagePublished or legacy publish carried."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    if "x-goog-pubsub-message-id" in headers:
        attributes = {
            GCS_ATTRIBUTES.get(name, name): value
            for name, value in headers.items()
            if name not in TRANSPORT_HEADERS and not name.startswith(TRANSPORT_PREFIXES)
        }
        return Message(request.body, attributes, headers["x-goog-pubsub-message-id"], None)
    try:
        raw = json.loads(request.body)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    if raw.get("type") == PUBSUB_PUBLISHED and isinstance(raw.get("data"), Mapping):
        raw = raw["data"]  # a structured CloudEvent: its data is the push envelope
    elif _is_legacy_publish(raw):
        return message_from_json(raw.get("data"))
    # A wrapped push, or a binary-mode messagePublished (its body is the same envelope).
    if isinstance(raw.get("message"), Mapping):
        return message_from_json(raw["message"])
    return None


def _is_legacy_publish(raw: Mapping[str, Any]) -> bool:
    context = raw.get("context")
    found = context.get("eventType") if isinstance(context, Mapping) else raw.get("eventType")
    return isinstance(found, str) and found in LEGACY_PUBSUB_TYPES


@dataclass(frozen=True)
class Outgoing:
    """What replay publishes for one recorded event, or why it publishes nothing."""

    source: str
    event_id: str | None
    data: bytes | None = None
    attributes: dict[str, str] | None = None
    skipped: str | None = None  # a reason: the event is not one a topic could carry
    bad: bool = False  # the recording is not a decodable event at all


def outgoing(request: RecordedRequest) -> Outgoing:
    """The message that carries a recorded event: the very message of a recorded push, else a
    GCS notification (JSON_API_V1) for a storage finalize, or a scheduler message for a sweep.
    """
    event = event_of(request)
    if isinstance(event, str):
        return Outgoing(request.source, None, skipped=event, bad=True)
    event_id = event.meta.event_id
    try:
        carried = carried_message(request)
    except EnvelopeError as exc:
        return Outgoing(request.source, event_id, skipped=str(exc), bad=True)
    if carried is not None:
        return Outgoing(request.source, event_id, carried.data, dict(carried.attributes))
    if isinstance(event, ObjectFinalized) and event.object.ref.generation is not None:
        resource = resource_from_info(event.object)
        if event.object.content_type is None:
            del resource["contentType"]  # unknown stays unknown (the service looks it up)
        push = json.loads(storage_notification_push(resource).body)
        message = message_from_json(push["message"])
        return Outgoing(request.source, event_id, message.data, dict(message.attributes))
    if isinstance(event, SweepRequested):
        payload = {"pipeline": event.pipeline, "date": event.date, "prefix": event.prefix}
        data = json.dumps({k: v for k, v in payload.items() if v}).encode()
        return Outgoing(request.source, event_id, data, {})
    reason = event.reason if isinstance(event, Ignored) else "no message can carry it"
    return Outgoing(request.source, event_id, skipped=f"not published: {reason}")


@dataclass(frozen=True)
class Published:
    item: Outgoing
    message_id: str | None = None
    error: str | None = None
    dry: bool = False

    @property
    def status(self) -> Publication:
        if self.message_id is not None:
            return Publication.PUBLISHED
        if self.item.bad or self.error:
            return Publication.ERROR
        if self.dry and self.item.data is not None:
            return Publication.WOULD_PUBLISH
        return Publication.SKIPPED

    @property
    def reason(self) -> str | None:
        return self.error or self.item.skipped


async def publish_all(
    sink: MessageSink, items: list[Outgoing], concurrency: int
) -> list[Published]:
    slots = asyncio.Semaphore(concurrency)

    async def one(item: Outgoing) -> Published:
        if item.data is None:
            return Published(item)
        async with slots:
            try:
                message_id = await sink.publish(item.data, item.attributes or {})
            except IngestError as exc:
                return Published(item, error=f"{type(exc).__name__}: {exc}")
        return Published(item, message_id)

    return list(await asyncio.gather(*(one(item) for item in items)))
