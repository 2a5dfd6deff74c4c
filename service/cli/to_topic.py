"""``ingest replay --to-topic``: recorded events published as the Pub/Sub messages that carry them.

Each recorded event goes out as the message that would have brought it, so it travels the real
delivery path (subscription, push, retries): the very message of a recorded push (wrapped or
unwrapped), of an Eventarc messagePublished or of a legacy publish; a GCS notification
(JSON_API_V1, the object resource as data) for a storage finalize; a scheduler message for a
sweep. Events no message could carry (a deletion, an unknown type) are skipped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from service.cli.common import console, err_console, run_async
from service.cli.relay import event_of
from service.cli.render import cell, source_label, table
from service.errors import ConfigError, EnvelopeError, IngestError
from service.events.decode import TRANSPORT_HEADERS, TRANSPORT_PREFIXES
from service.events.event_types import GCS_ATTRIBUTES, LEGACY_PUBSUB_TYPES, PUBSUB_PUBLISHED
from service.events.pubsub import Message, message_from_json
from service.models import Ignored, ObjectFinalized, SweepRequested
from service.ports import MessageSink
from service.recording import RecordedRequest
from service.samples import resource_from_info, storage_notification_push

if TYPE_CHECKING:
    from service.settings import Settings

# Colour of each result in the table.
STYLES = {"published": "green", "would-publish": "green", "skipped": "dim"}


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
    def status(self) -> str:
        if self.message_id is not None:
            return "published"
        if self.item.bad or self.error:
            return "error"
        if self.dry and self.item.data is not None:
            return "would-publish"
        return "skipped"

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


def replay_to_topic(
    settings: Settings,
    topic: str,
    requests: list[RecordedRequest],
    *,
    concurrency: int,
    force: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """``ingest replay --to-topic``: publish, report, exit non-zero when any event failed."""
    from service.wiring import open_topic

    if force:
        raise click.UsageError("--force cannot travel through a topic: replay --to URL instead")

    items = [outgoing(r) for r in requests]
    started = time.perf_counter()
    if dry_run:
        results = [Published(item, dry=True) for item in items]
    else:
        try:
            sink = open_topic(settings, topic)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--to-topic") from exc

        async def publish() -> list[Published]:
            try:
                return await publish_all(sink, items, concurrency)
            finally:
                await sink.close()

        results = run_async(publish)
    _report(topic, results, time.perf_counter() - started, as_json=as_json)


def _report(topic: str, results: list[Published], seconds: float, *, as_json: bool) -> None:
    if as_json:
        for r in results:
            line = {
                "source": r.item.source,
                "event_id": r.item.event_id,
                "status": r.status,
                "message_id": r.message_id,
                "attributes": r.item.attributes,
                "reason": r.reason,
            }
            click.echo(json.dumps(line, ensure_ascii=False))
    else:
        t = table(f"replay to {topic}", ["event", "id", "outcome", "message id", "reason"])
        for r in results:
            t.add_row(
                cell(source_label(r.item.source)),
                cell(r.item.event_id),
                cell(r.status, STYLES.get(r.status, "bold red")),
                cell(r.message_id),
                cell(r.reason),
            )
        console.print(t)
    counts = Counter(r.status for r in results)
    parts = ", ".join(f"{n} {status}" for status, n in counts.most_common())
    (err_console if as_json else console).print(
        f"{len(results)} events in {seconds:.2f} s: {parts}", highlight=False
    )
    failed = counts.get("error", 0)
    if failed:
        raise click.ClickException(f"{failed} of {len(results)} events could not be published")
