"""Pub/Sub (google-cloud-pubsub): outcome events and raw messages out, pulled messages in.

The clients are the library's blocking ones: publishing goes through its batching thread (its
future is awaited here), pulls and acknowledgements run in threads. On the emulator
(``PUBSUB_EMULATOR_HOST``) they talk plain gRPC to it with no credentials.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import grpc  # type: ignore[import-untyped]
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from service.adapters.gcp.credentials import needing_credentials
from service.adapters.gcp.errors import translate
from service.errors import ConfigError, PermanentError
from service.outcomes import UnitEnded
from service.ports import PulledMessage
from service.pubsub_binding import to_message
from service.settings import Settings

C = TypeVar("C", PublisherClient, SubscriberClient)

# How long one publish keeps retrying before it gives up (the outcome is recorded already).
PUBLISH_DEADLINE_SECONDS = 30.0
# Publish failures worth another attempt: the service was unavailable, overloaded or slow.
RETRYABLE = if_exception_type(
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.Aborted,
    gexc.ResourceExhausted,
    gexc.Unknown,
    gexc.Cancelled,
)
# PublisherClient.publish takes attributes as keyword arguments: these names are its own.
RESERVED_ATTRIBUTES = frozenset({"topic", "data", "ordering_key", "retry", "timeout"})
# Ack ids per acknowledge / modifyAckDeadline request (the API caps a request at 512 kB).
ACK_BATCH = 500


def resource_name(name: str, kind: str, project: str | None) -> str:
    """``projects/P/KIND/N`` from a full name, or from a short one and the project."""
    if name.startswith("projects/"):
        parts = name.split("/")
        if len(parts) != 4 or parts[2] != kind or not parts[1] or not parts[3]:
            raise ConfigError(f"{name!r} is not projects/PROJECT/{kind}/NAME")
        return name
    if not name or "/" in name:
        raise ConfigError(f"{name!r} is not a {kind[:-1]} name")
    if not project:
        raise ConfigError(f"{name!r}: give projects/PROJECT/{kind}/{name}, or set INGEST_PROJECT")
    return f"projects/{project}/{kind}/{name}"


def _client(settings: Settings, client: Callable[..., C], transport: Callable[..., Any]) -> C:
    """A publisher or subscriber client: plain gRPC to the emulator when one is set (no
    credentials), otherwise Google's, with the application default credentials."""
    if settings.pubsub_emulator_host:
        channel = grpc.insecure_channel(settings.pubsub_emulator_host)
        return client(transport=transport(channel=channel))
    with needing_credentials():
        return client()


class PubSubTopic:
    """A topic to publish raw messages to (MessageSink)."""

    def __init__(
        self,
        client: PublisherClient,
        topic: str,
        *,
        deadline_seconds: float = PUBLISH_DEADLINE_SECONDS,
    ) -> None:
        self.client = client
        self.topic = topic
        self.deadline = deadline_seconds
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings, topic: str) -> PubSubTopic:
        return cls(
            _client(settings, PublisherClient, PublisherGrpcTransport),
            resource_name(topic, "topics", settings.project),
        )

    async def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        clashing = RESERVED_ATTRIBUTES.intersection(attributes)
        if clashing:
            raise PermanentError(f"cannot publish attributes named {sorted(clashing)}")
        retry = Retry(
            initial=0.1, maximum=5.0, multiplier=2.0, predicate=RETRYABLE, timeout=self.deadline
        )
        try:
            # Publish (batched by the client): pubsub.topics.publish on the topic
            # (pubsub.publisher). 10 MB and 1,000 messages per request; retried on RETRYABLE.
            future = self.client.publish(
                self.topic, data, retry=retry, timeout=self.deadline, **attributes
            )
            message_id = await asyncio.wrap_future(future)
        except Exception as exc:
            raise translate(exc, f"publish to {self.topic}") from exc
        return str(message_id)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        # stop() sends what is still batched (and refuses a second call); then the channel goes.
        self.client.stop()
        self.client.transport.close()


class PubSubOutcomePublisher:
    """Outcome events as Pub/Sub messages: CloudEvents in the Pub/Sub protocol binding (``ce-``
    attributes, the JSON data as the body), plus plain attributes state / pipeline / table."""

    def __init__(self, topic: PubSubTopic) -> None:
        self.topic = topic

    @classmethod
    def from_settings(cls, settings: Settings, topic: str) -> PubSubOutcomePublisher:
        return cls(PubSubTopic.from_settings(settings, topic))

    async def publish(self, outcome: UnitEnded) -> None:
        data, attributes = to_message(outcome.cloudevent())
        await self.topic.publish(data, {**outcome.attributes(), **attributes})

    async def close(self) -> None:
        await self.topic.close()


class PubSubSubscription:
    """A pull subscription (MessageSource): pull, acknowledge, extend or give back leases."""

    def __init__(self, client: SubscriberClient, subscription: str) -> None:
        self.client = client
        self.subscription = subscription

    @classmethod
    def from_settings(cls, settings: Settings, subscription: str) -> PubSubSubscription:
        name = resource_name(subscription, "subscriptions", settings.project)
        return cls(_client(settings, SubscriberClient, SubscriberGrpcTransport), name)

    async def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, **kwargs)
        except Exception as exc:
            raise translate(exc, f"{what} {self.subscription}") from exc

    async def pull(self, max_messages: int, wait_seconds: float) -> list[PulledMessage]:
        def pull_once() -> Any:
            try:
                # Pull: pubsub.subscriptions.consume (pubsub.subscriber); not retried (retry=None):
                # an empty wait is an answer, and the caller pulls again.
                return self.client.pull(
                    subscription=self.subscription,
                    max_messages=max_messages,
                    timeout=wait_seconds,
                    retry=None,
                )
            except gexc.DeadlineExceeded:
                return None  # nothing arrived within the wait

        response = await self._call("pull", pull_once)
        if response is None:
            return []
        return [pulled_message(received) for received in response.received_messages]

    async def ack(self, ack_ids: Sequence[str]) -> None:
        for start in range(0, len(ack_ids), ACK_BATCH):
            batch = list(ack_ids[start : start + ACK_BATCH])
            # Acknowledge: pubsub.subscriptions.consume; ack ids cap a request at 512 kB.
            await self._call(
                "acknowledge",
                self.client.acknowledge,
                subscription=self.subscription,
                ack_ids=batch,
            )

    async def lease(self, ack_ids: Sequence[str], seconds: int) -> None:
        for start in range(0, len(ack_ids), ACK_BATCH):
            # ModifyAckDeadline: pubsub.subscriptions.consume; 0 to 600 seconds.
            await self._call(
                "modify ack deadline",
                self.client.modify_ack_deadline,
                subscription=self.subscription,
                ack_ids=list(ack_ids[start : start + ACK_BATCH]),
                ack_deadline_seconds=seconds,
            )

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)


def pulled_message(received: Any) -> PulledMessage:
    """A ReceivedMessage from a pull, as the port's value."""
    message = received.message
    return PulledMessage(
        ack_id=received.ack_id,
        message_id=message.message_id,
        data=bytes(message.data),
        attributes=dict(message.attributes),
        publish_time=message.publish_time or None,
        # 0 means the subscription has no dead-letter policy of its own: not counted.
        delivery_attempt=received.delivery_attempt or None,
    )
