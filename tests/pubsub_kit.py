"""Pub/Sub test kit: topics and subscriptions on the emulator, made and removed per test.

Created through the adapters' own Google clients (PublisherClient / SubscriberClient), so the
tests use the real client libraries and nothing but the adapters imports them. Push
subscriptions always get a retry policy: without one the emulator redelivers every second.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from service.adapters.gcp.pubsub import PubSubSubscription, PubSubTopic, pulled_message
from service.ports import PulledMessage
from service.samples import storage_cloudevent
from service.settings import Settings
from tests.emulator_fixtures import PROJECT

# Bounds for waiting on deliveries (each loop stops by itself).
DELIVERY_SECONDS = 90.0
PULL_WAIT_SECONDS = 2.0


@dataclass
class PubSubKit:
    settings: Settings
    prefix: str
    publisher: Any
    subscriber: Any
    topics: list[str] = field(default_factory=list)
    subscriptions: list[str] = field(default_factory=list)

    def topic(self, name: str) -> str:
        path = f"projects/{PROJECT}/topics/{self.prefix}-{name}"
        self.publisher.create_topic(name=path)
        self.topics.append(path)
        return path

    def pull_subscription(self, name: str, topic: str) -> str:
        path = f"projects/{PROJECT}/subscriptions/{self.prefix}-{name}"
        self.subscriber.create_subscription(
            request={"name": path, "topic": topic, "ack_deadline_seconds": 30}
        )
        self.subscriptions.append(path)
        return path

    def push_subscription(
        self,
        name: str,
        topic: str,
        endpoint: str,
        *,
        dead_letter_topic: str | None = None,
        max_delivery_attempts: int = 5,
        retry_policy: bool = True,
    ) -> str:
        """A push subscription; ``retry_policy`` False leaves the emulator's own redelivery, which
        does not stall (docs/emulators.md: a failed push with a retry policy can wait minutes)."""
        path = f"projects/{PROJECT}/subscriptions/{self.prefix}-{name}"
        request: dict[str, Any] = {
            "name": path,
            "topic": topic,
            "push_config": {"push_endpoint": endpoint},
            "ack_deadline_seconds": 60,
        }
        if retry_policy:
            request["retry_policy"] = {
                "minimum_backoff": timedelta(milliseconds=100),
                "maximum_backoff": timedelta(seconds=1),
            }
        if dead_letter_topic is not None:
            request["dead_letter_policy"] = {
                "dead_letter_topic": dead_letter_topic,
                "max_delivery_attempts": max_delivery_attempts,
            }
        self.subscriber.create_subscription(request=request)
        self.subscriptions.append(path)
        return path

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        message_id: str = self.publisher.publish(topic, data, **attributes).result(timeout=30)
        return message_id

    def pull(self, subscription: str, *, ack: bool) -> list[PulledMessage]:
        """One pull (waits up to PULL_WAIT_SECONDS); acknowledged, or given straight back."""
        response = self.subscriber.pull(
            subscription=subscription, max_messages=100, timeout=PULL_WAIT_SECONDS, retry=None
        )
        found = [pulled_message(r) for r in response.received_messages]
        ids = [m.ack_id for m in found]
        if ids:
            if ack:
                self.subscriber.acknowledge(subscription=subscription, ack_ids=ids)
            else:
                self.subscriber.modify_ack_deadline(
                    subscription=subscription, ack_ids=ids, ack_deadline_seconds=0
                )
        return found

    def collect(self, subscription: str, count: int) -> list[PulledMessage]:
        """Pull and acknowledge until ``count`` messages came, then one more (empty) pull."""
        found: list[PulledMessage] = []
        deadline = time.monotonic() + DELIVERY_SECONDS
        while len(found) < count and time.monotonic() < deadline:
            found.extend(self.pull(subscription, ack=True))
        found.extend(self.pull(subscription, ack=True))  # nothing more may be waiting
        return found

    def cleanup(self) -> None:
        for path in self.subscriptions:
            with contextlib.suppress(Exception):
                self.subscriber.delete_subscription(subscription=path)
        for path in self.topics:
            with contextlib.suppress(Exception):
                self.publisher.delete_topic(topic=path)


@contextlib.contextmanager
def pubsub_kit(settings: Settings, prefix: str) -> Iterator[PubSubKit]:
    """Topics and subscriptions named ``prefix-...``, all deleted at the end."""
    topic = PubSubTopic.from_settings(settings, "unused")
    source = PubSubSubscription.from_settings(settings, "unused")
    kit = PubSubKit(settings, prefix, topic.client, source.client)
    try:
        yield kit
    finally:
        kit.cleanup()
        topic.client.stop()
        topic.client.transport.close()
        source.client.close()


def pipelines_file(folder: Path, bucket: str, dataset: str) -> Path:
    """One pipeline: CSV files under ``in/`` of ``bucket`` into ``dataset.rows``."""
    path = folder / "pipelines.toml"
    path.write_text(
        f"""
[[pipelines]]
name = "rows"
bucket = "{bucket}"
prefix = "in/"
glob = "*.csv"
table = "{dataset}.rows"
schema = [
  {{ name = "id", type = "INTEGER", mode = "REQUIRED" }},
  {{ name = "name", type = "STRING" }},
]
"""
    )
    return path


def csv_rows(first: int, count: int) -> bytes:
    lines = ["id,name", *(f"{i},name {i}" for i in range(first, first + count))]
    return ("\n".join(lines) + "\n").encode()


async def warm_up(settings: Settings, bucket: str) -> None:
    """Load one file in-process so the dataset and table exist before concurrent loads: the
    BigQuery emulator fails concurrent creations of one dataset or table ("Failed to commit
    DuckLake transaction"), which the service would take for a permanent failure.
    """
    from service.adapters.gcp.gcs import GcsObjectStore
    from service.models import EventMeta, ObjectFinalized, ObjectRef
    from service.results import Status
    from service.wiring import build_backends, build_ingestor, load_config

    gcs = GcsObjectStore.from_settings(settings)
    written = await gcs.write(ObjectRef(bucket, "in/warm-up.csv"), csv_rows(0, 1), "text/csv")
    await gcs.close()
    backends = build_backends(settings)
    try:
        ingestor = build_ingestor(settings, backends, load_config(settings))
        meta = EventMeta("warm-up", "google.cloud.storage.object.v1.finalized", "test")
        outcome = await ingestor.handle(ObjectFinalized(meta, await backends.store.stat(written)))
        assert outcome.status is Status.LOADED, outcome
    finally:
        await backends.close()


def eventarc_message(resource: dict[str, Any], event_id: str) -> tuple[bytes, dict[str, str]]:
    """How Eventarc carries an object-finalized CloudEvent through Pub/Sub: the binding's binary
    mode, attributes as ``ce-`` message attributes (not percent-encoded), data as the body."""
    request = storage_cloudevent(resource, event_id)
    attributes = {k: v for k, v in request.headers.items() if k.startswith("ce-")}
    return request.body, {**attributes, "Content-Type": request.headers["Content-Type"]}
