"""The service's work topic (google-cloud-pubsub): where a fanned-out sweep publishes units.

The topic's push subscription delivers each message back to the service (see
service/deploy/fanout.py), on whichever instance Cloud Run routes it to.
"""

from __future__ import annotations

from collections.abc import Mapping

from service.adapters.gcp.pubsub import PubSubTopic
from service.settings import Settings


class PubSubWorkPublisher:
    def __init__(self, topic: PubSubTopic) -> None:
        self.topic = topic

    @classmethod
    def from_settings(cls, settings: Settings, topic: str) -> PubSubWorkPublisher:
        return cls(PubSubTopic.from_settings(settings, topic))

    async def publish(self, data: bytes, attributes: Mapping[str, str]) -> None:
        # topics.publish through the batching client: pubsub.topics.publish on the work topic
        # (roles/pubsub.publisher for the runner). Retried on UNAVAILABLE and the like within
        # PubSubTopic's deadline; a failure is Transient and the sweep is delivered again.
        await self.topic.publish(data, attributes)

    async def close(self) -> None:
        await self.topic.close()
