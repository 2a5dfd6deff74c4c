"""The Pub/Sub adapter on the emulator, through google-cloud-pubsub's real clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from service.adapters.gcp.pubsub import (
    PubSubOutcomePublisher,
    PubSubSubscription,
    PubSubTopic,
    resource_name,
)
from service.errors import ConfigError, NotFoundError, PermanentError, TransientError
from service.models import LedgerRecord, UnitKey, UnitResult, UnitState
from service.outcomes import unit_ended
from service.settings import Settings
from tests.emulator_fixtures import PROJECT, Emulators
from tests.pubsub_kit import PubSubKit, pubsub_kit

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def kit(emulators: Emulators, unique: str) -> Iterator[PubSubKit]:
    with pubsub_kit(emulators.settings(), unique) as made:
        yield made


def test_resource_names() -> None:
    assert resource_name("projects/p/topics/t", "topics", None) == "projects/p/topics/t"
    assert resource_name("t", "topics", "p") == "projects/p/topics/t"
    assert resource_name("s", "subscriptions", "p") == "projects/p/subscriptions/s"
    for bad in ("projects/p/subscriptions/s", "projects/p/topics", "a/b", ""):
        with pytest.raises(ConfigError):
            resource_name(bad, "topics", "p")
    with pytest.raises(ConfigError, match="INGEST_PROJECT"):
        resource_name("t", "topics", None)


@pytest.mark.emulators
async def test_outcome_message_data_and_attributes(emulators: Emulators, kit: PubSubKit) -> None:
    topic = kit.topic("outcomes")
    subscription = kit.pull_subscription("reader", topic)
    publisher = PubSubOutcomePublisher.from_settings(emulators.settings(), topic)
    record = LedgerRecord(
        key="k" * 40,
        unit="rows:gs://b/in/a.csv#3",
        pipeline="rows",
        state=UnitState.COMPLETED,
        owner="w",
        lease_expires_at=NOW,
        fingerprint="md5:x",
        attempt=1,
        created_at=NOW,
        updated_at=NOW,
        expire_at=NOW,
        event_id="ev",
        result=UnitResult(rows_read=3, rows_loaded=3, job_id="job-3"),
    )
    ended = unit_ended(UnitKey("rows", "b", "in/a.csv", 3), record, "ds.rows")
    await publisher.publish(ended)
    await publisher.close()
    [message] = kit.collect(subscription, 1)
    assert json.loads(message.data) == ended.data()
    # A CloudEvent in Pub/Sub's binding (ce- attributes), with the plain attributes that
    # subscription filters use beside them.
    plain = {k: message.attributes[k] for k in ("state", "pipeline", "table")}
    assert plain == {"state": "COMPLETED", "pipeline": "rows", "table": "ds.rows"}
    assert message.attributes["ce-type"] == "gcp_ingest.unit.v1.completed"
    assert message.attributes["ce-specversion"] == "1.0"


@pytest.mark.emulators
async def test_publish_to_a_missing_topic_is_permanent(emulators: Emulators, unique: str) -> None:
    topic = PubSubTopic.from_settings(emulators.settings(), f"projects/{PROJECT}/topics/{unique}")
    with pytest.raises(NotFoundError):
        await topic.publish(b"x", {})
    with pytest.raises(PermanentError, match="timeout"):
        await topic.publish(b"x", {"timeout": "1"})  # would clash with publish()'s own argument
    await topic.close()


async def test_publish_to_an_unreachable_service_is_transient() -> None:
    # Nothing listens on port 9 of this machine: every attempt is refused, then retried.
    settings = Settings(backend="gcp", project="p", pubsub_emulator_host="127.0.0.1:9")
    topic = PubSubTopic(
        PubSubTopic.from_settings(settings, "t").client, "projects/p/topics/t", deadline_seconds=1
    )
    with pytest.raises(TransientError):
        await topic.publish(b"x", {})
    await topic.close()


@pytest.mark.emulators
async def test_subscription_pull_give_back_and_ack(emulators: Emulators, kit: PubSubKit) -> None:
    topic = kit.topic("in")
    subscription = kit.pull_subscription("dead", topic)
    sent = {kit.publish(topic, f"m{i}".encode(), n=str(i)) for i in range(3)}
    source = PubSubSubscription.from_settings(emulators.settings(), subscription)
    pulled = []
    for _ in range(10):  # the emulator may hand them out over several pulls
        pulled += await source.pull(10, 2.0)
        if len(pulled) >= 3:
            break
    assert {m.message_id for m in pulled} == sent
    assert {m.data for m in pulled} == {b"m0", b"m1", b"m2"}
    assert all(m.attributes["n"] in {"0", "1", "2"} for m in pulled)
    await source.lease([m.ack_id for m in pulled], 0)  # given back: not consumed
    again = []
    for _ in range(10):
        again += await source.pull(10, 2.0)
        if len(again) >= 3:
            break
    assert {m.message_id for m in again} == sent
    await source.ack([m.ack_id for m in again])
    assert await source.pull(10, 2.0) == []
    await source.close()


@pytest.mark.emulators
async def test_pull_from_a_missing_subscription_is_not_found(emulators: Emulators) -> None:
    source = PubSubSubscription.from_settings(emulators.settings(), "no-such-subscription")
    with pytest.raises(NotFoundError):
        await source.pull(1, 2.0)
    await source.close()
