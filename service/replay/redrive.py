"""Dead-letter re-drive: pulled Pub/Sub messages back into the service, acknowledged once handled.

A dead-lettered message is the original one (data and attributes) plus Pub/Sub's
``CloudPubSubDeadLetter*`` attributes. Re-driving rebuilds the request the service would have
been sent: for a CloudEvent in the Pub/Sub protocol binding (``ce-`` attributes, data as the
body: how Eventarc moves its events) the binary-mode CloudEvent request, for any other message
the push envelope. It sends it the way ``ingest replay`` does (``replay.delivery``: over HTTP or
in-process); a message is acknowledged only when its answer is final (``answers.is_final``), and
every other one is given back.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from service.answers import Refusal, is_final
from service.background import alongside
from service.errors import IngestError
from service.models import Ignored, SweepRequested, UnitKey
from service.plans import plan
from service.ports import MessageSource, PulledMessage
from service.pubsub_binding import is_binary_cloudevent, to_http
from service.recording import RecordedRequest, event_of

if TYPE_CHECKING:
    from service.pipeline.definition import PipelineSet
    from service.replay.delivery import Result

# Attributes Pub/Sub adds when it dead-letters a message; the original has none of them.
DEAD_LETTER_PREFIX = "CloudPubSubDeadLetter"
SOURCE_DELIVERIES = "CloudPubSubDeadLetterSourceDeliveryCount"
# Leases on pulled messages: the longest Pub/Sub allows, renewed while a run goes on.
LEASE_SECONDS = 600
RENEW_EVERY_SECONDS = 120.0
# Messages asked for per pull request.
PULL_BATCH = 100

Runner = Callable[[list[RecordedRequest]], Awaitable[list["Result"]]]


@dataclass(frozen=True)
class Held:
    """A pulled message, with every ack id it came with (a lease may have been redelivered)."""

    message: PulledMessage
    ack_ids: tuple[str, ...]


def original_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in attributes.items() if not k.startswith(DEAD_LETTER_PREFIX)}


def deliveries(message: PulledMessage) -> int | None:
    """How often the original subscription tried to deliver it (dead-letter attribute)."""
    raw = message.attributes.get(SOURCE_DELIVERIES)
    if raw is not None and raw.isdigit():
        return int(raw)
    return message.delivery_attempt


def push_request(message: PulledMessage, subscription: str) -> RecordedRequest:
    """The request the service would have received for the original message: a binary-mode
    CloudEvent for a message in the CloudEvents binding, else the wrapped push envelope."""
    attributes = original_attributes(message.attributes)
    if is_binary_cloudevent(attributes):
        headers, data = to_http(message.data, attributes)
        return RecordedRequest(headers, data, source=f"message {message.message_id}")
    body: dict[str, Any] = {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": attributes,
            "messageId": message.message_id,
            "publishTime": _stamp(message.publish_time),
        },
        "subscription": subscription,
    }
    count = deliveries(message)
    if count is not None:
        body["deliveryAttempt"] = count
    return RecordedRequest(
        {"Content-Type": "application/json"},
        json.dumps(body).encode(),
        source=f"message {message.message_id}",
    )


def _stamp(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


@dataclass(frozen=True)
class Peeked:
    """What one dead-lettered message carries, as far as can be told without running it."""

    message_id: str
    kind: str
    target: str
    deliveries: int | None
    error: str | None
    units: tuple[UnitKey, ...] = ()
    ledger: str | None = None


def describe(message: PulledMessage, subscription: str, pipelines: PipelineSet | None) -> Peeked:
    """What a dead-lettered message carries, and the units it would run (with ``pipelines``)."""
    count = deliveries(message)
    event = event_of(push_request(message, subscription))
    if isinstance(event, str):
        return Peeked(message.message_id, "undecodable", "", count, event)
    if isinstance(event, Ignored):
        return Peeked(message.message_id, "ignored", event.meta.event_type, count, event.reason)
    if isinstance(event, SweepRequested):
        scope = f" date {event.date}" if event.date else ""
        scope += f" prefix {event.prefix}" if event.prefix else ""
        return Peeked(message.message_id, "sweep", f"pipeline {event.pipeline}{scope}", count, None)
    ref = event.object.ref
    units: tuple[UnitKey, ...] = ()
    ledger = None
    if pipelines is not None and ref.generation is not None:
        units = plan(pipelines, event).units
        ledger = None if units else "no pipeline matches"
    target = f"{ref.uri}#{ref.generation}"
    return Peeked(message.message_id, event.meta.event_type, target, count, None, units, ledger)


async def pull_all(source: MessageSource, limit: int, wait_seconds: float) -> list[Held]:
    """Pull until ``limit`` messages or a pull that brings nothing new; all of them leased."""
    found: dict[str, Held] = {}
    while len(found) < limit:
        batch = await source.pull(min(PULL_BATCH, limit - len(found)), wait_seconds)
        if not batch:
            break
        await source.lease([m.ack_id for m in batch], LEASE_SECONDS)
        new = 0
        for message in batch:
            held = found.get(message.message_id)
            if held is None:
                new += 1
                found[message.message_id] = Held(message, (message.ack_id,))
            else:
                found[message.message_id] = Held(held.message, (*held.ack_ids, message.ack_id))
        if not new:
            break  # only messages we already hold: the subscription has nothing else
    return list(found.values())


def ack_ids(held: list[Held]) -> list[str]:
    return [ack_id for h in held for ack_id in h.ack_ids]


async def give_back(source: MessageSource, held: list[Held]) -> None:
    """Deadline 0: Pub/Sub may deliver them again at once (nothing was consumed)."""
    if held:
        await source.lease(ack_ids(held), 0)


@contextlib.asynccontextmanager
async def kept(source: MessageSource, held: list[Held]) -> AsyncIterator[None]:
    """Renew the leases of ``held`` while the body runs (a run may outlast one lease)."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY_SECONDS)
            with contextlib.suppress(IngestError):
                await source.lease(ack_ids(held), LEASE_SECONDS)

    async with alongside(renew):
        yield


@dataclass(frozen=True)
class Redriven:
    held: Held
    http_status: int
    body: dict[str, Any]
    acked: bool

    @property
    def status(self) -> str:
        return str(self.body.get("status", Refusal.ERROR))


async def redrive(
    source: MessageSource, subscription: str, held: list[Held], run: Runner
) -> list[Redriven]:
    """Run each held message's event; acknowledge the handled ones, give the rest back.

    ``run`` sends them (``replay.delivery``, over HTTP or in-process): requests in, results (with
    ``http_status`` and ``body``) out, in order. If it raises, every message is given back.
    """
    requests = [push_request(h.message, subscription) for h in held]
    try:
        async with kept(source, held):
            results = await run(requests)
    except BaseException:
        with contextlib.suppress(IngestError):
            await give_back(source, held)
        raise
    rows = [
        Redriven(h, r.http_status, r.body, is_final(r.http_status, r.status))
        for h, r in zip(held, results, strict=True)
    ]
    try:
        await source.ack(ack_ids([r.held for r in rows if r.acked]))
    finally:
        await give_back(source, [r.held for r in rows if not r.acked])
    return rows
