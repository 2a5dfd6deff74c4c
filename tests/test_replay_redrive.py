"""Dead-letter re-drive logic: messages back into events, acknowledged only once handled.

A fake subscription keeps exact account of what was acknowledged and given back; the events
run in-process on the real embedded adapters.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from service.models import ObjectFinalized, ObjectRef, SweepRequested, UnitKey
from service.pipeline.pipelines_file import load_pipelines
from service.ports import PulledMessage
from service.recording import RecordedRequest, event_of
from service.replay import delivery, redrive
from service.replay.delivery import Result, Unreachable
from service.samples import object_resource, scheduler_push, storage_notification_push
from service.settings import Settings
from tests.conftest import EXAMPLES, seed_examples
from tests.pubsub_kit import eventarc_message

SUBSCRIPTION = "projects/p/subscriptions/dead"
DEAD_LETTER = {
    "CloudPubSubDeadLetterSourceDeliveryCount": "5",
    "CloudPubSubDeadLetterSourceSubscription": "push",
    "CloudPubSubDeadLetterSourceSubscriptionProject": "p",
    "CloudPubSubDeadLetterSourceTopicPublishTime": "2026-11-21T23:42:43.256Z",
}


def dead_lettered(request: RecordedRequest, message_id: str) -> PulledMessage:
    """What a dead-letter subscription hands out for the message a push request carried."""
    message = json.loads(request.body)["message"]
    return PulledMessage(
        ack_id=f"ack-{message_id}",
        message_id=message_id,
        data=base64.b64decode(message["data"]),
        attributes={**message["attributes"], **DEAD_LETTER},
        publish_time=datetime(2026, 11, 21, 23, 42, 56, tzinfo=UTC),
    )


def orders_notification(
    name: str = "orders/2026-11-20.csv", generation: int = 1
) -> RecordedRequest:
    data = (EXAMPLES / "data" / "landing" / name).read_bytes()
    return storage_notification_push(object_resource("landing", name, generation, data))


class FakeSubscription:
    """Messages on offer; leased ones are not handed out until given back (deadline 0)."""

    def __init__(self, messages: list[PulledMessage]) -> None:
        self.offered = {m.ack_id: m for m in messages}
        self.leased: set[str] = set()
        self.acked: list[str] = []
        self.given_back: list[str] = []
        self.extended: list[tuple[str, int]] = []
        self.pulls = 0

    async def pull(self, max_messages: int, wait_seconds: float) -> list[PulledMessage]:
        self.pulls += 1
        free = [m for a, m in self.offered.items() if a not in self.leased][:max_messages]
        self.leased.update(m.ack_id for m in free)
        return free

    async def ack(self, ack_ids: Sequence[str]) -> None:
        for ack_id in ack_ids:
            assert ack_id in self.leased, "acknowledged a message it did not hold"
            self.acked.append(ack_id)
            self.leased.discard(ack_id)
            del self.offered[ack_id]

    async def lease(self, ack_ids: Sequence[str], seconds: int) -> None:
        for ack_id in ack_ids:
            if seconds == 0:
                self.given_back.append(ack_id)
                self.leased.discard(ack_id)
            else:
                self.extended.append((ack_id, seconds))

    async def close(self) -> None:
        return None


def test_the_push_request_carries_the_original_message() -> None:
    original = orders_notification()
    request = redrive.push_request(dead_lettered(original, "m1"), SUBSCRIPTION)
    body = json.loads(request.body)
    sent = json.loads(original.body)["message"]
    assert body["message"]["attributes"] == sent["attributes"]  # dead-letter ones stripped
    assert body["message"]["data"] == sent["data"]
    assert body["message"]["messageId"] == "m1"
    assert body["deliveryAttempt"] == 5
    event = event_of(request)
    assert isinstance(event, ObjectFinalized)
    assert event.object.ref == ObjectRef("landing", "orders/2026-11-20.csv", 1)
    assert event.meta.delivery_attempt == 5
    sweep = event_of(redrive.push_request(dead_lettered(scheduler_push("orders"), "m2"), "s"))
    assert isinstance(sweep, SweepRequested) and sweep.pipeline == "orders"


def test_an_eventarc_delivery_is_sent_again_as_a_binary_mode_cloudevent() -> None:
    # Issue: a dead-lettered Eventarc message (ce- attributes, data as the body) re-drove as
    # a push envelope, which the service reads as a message naming no pipeline: ignored.
    name = "orders/a b é.csv"  # a space and a non-ASCII letter: percent-encoded as headers
    data, attributes = eventarc_message(object_resource("landing", name, 7, b"x"), "ev-9")
    dead = PulledMessage("ack-1", "m1", data, {**attributes, **DEAD_LETTER}, None)
    request = redrive.push_request(dead, SUBSCRIPTION)
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.headers["ce-subject"] == "objects/orders/a%20b%20%C3%A9.csv"
    assert not any(h.lower().startswith("cloudpubsub") for h in request.headers)
    assert request.body == data
    event = event_of(request)
    assert isinstance(event, ObjectFinalized)
    assert (event.meta.event_id, event.meta.shape) == ("ev-9", "cloudevent-binary")
    assert event.object.ref == ObjectRef("landing", name, 7)
    described = redrive.describe(dead, SUBSCRIPTION, load_pipelines(EXAMPLES / "pipelines.toml"))
    assert (described.kind, described.units) == (
        "google.cloud.storage.object.v1.finalized",
        (UnitKey("orders", "landing", name, 7),),
    )


async def test_pull_all_stops_at_the_limit_and_leases_everything() -> None:
    messages = [dead_lettered(orders_notification(), f"m{i}") for i in range(7)]
    source = FakeSubscription(messages)
    held = await redrive.pull_all(source, 5, 1.0)
    assert [h.message.message_id for h in held] == [f"m{i}" for i in range(5)]
    assert {a for a, s in source.extended if s == redrive.LEASE_SECONDS} == {
        f"ack-m{i}" for i in range(5)
    }
    everything = await redrive.pull_all(FakeSubscription(messages), 100, 1.0)
    assert len(everything) == 7


def result(request: RecordedRequest, http_status: int, status: str) -> Result:
    return Result(request.source, http_status, {"status": status})


async def test_only_handled_messages_are_acknowledged() -> None:
    # One message per kind of answer; the fake runner answers by message id.
    answers = {
        "loaded": (200, "loaded"),
        "duplicate": (200, "duplicate"),
        "ignored": (200, "ignored"),
        "failed": (200, "failed"),
        "busy": (429, "busy"),
        "transient": (503, "transient"),
        "bad": (400, "bad_request"),
        "odd": (202, "loaded"),  # a 202 would be a nack on the emulator: not handled
    }
    source = FakeSubscription([dead_lettered(orders_notification(), m) for m in answers])
    held = await redrive.pull_all(source, 100, 1.0)

    async def run(requests: list[RecordedRequest]) -> list[Result]:
        ids = [json.loads(r.body)["message"]["messageId"] for r in requests]
        return [result(r, *answers[i]) for r, i in zip(requests, ids, strict=True)]

    rows = await redrive.redrive(source, SUBSCRIPTION, held, run)
    acked = {"ack-loaded", "ack-duplicate", "ack-ignored", "ack-failed"}
    assert set(source.acked) == acked
    assert set(source.given_back) == {f"ack-{m}" for m in answers} - acked
    assert {r.held.message.message_id for r in rows if r.acked} == {a[4:] for a in acked}
    assert source.leased == set()  # nothing left hanging


async def test_a_runner_that_fails_gives_everything_back() -> None:
    source = FakeSubscription([dead_lettered(orders_notification(), f"m{i}") for i in range(3)])
    held = await redrive.pull_all(source, 100, 1.0)

    async def unreachable(requests: list[RecordedRequest]) -> list[Result]:
        raise Unreachable("cannot reach http://127.0.0.1:9/")

    with pytest.raises(Unreachable):
        await redrive.redrive(source, SUBSCRIPTION, held, unreachable)
    assert source.acked == []
    assert sorted(source.given_back) == ["ack-m0", "ack-m1", "ack-m2"]


async def test_in_process_redrive_loads_once_and_keeps_what_it_cannot_run(
    embedded_settings: Settings,
) -> None:
    seed_examples(embedded_settings)
    broken = PulledMessage(
        ack_id="ack-broken",
        message_id="broken",
        data=b"{not json",
        attributes={"eventType": "OBJECT_FINALIZE", "bucketId": "landing", **DEAD_LETTER},
        publish_time=None,
    )
    source = FakeSubscription(
        [
            dead_lettered(orders_notification("orders/2026-11-20.csv"), "a"),
            dead_lettered(orders_notification("orders/2026-11-21.csv"), "b"),
            dead_lettered(orders_notification("orders/2026-11-20.csv"), "a-again"),
            broken,
        ]
    )
    held = await redrive.pull_all(source, 100, 1.0)

    async def run(requests: list[RecordedRequest]) -> list[Result]:
        sending = delivery.Sending(concurrency=1)
        return await delivery.in_process(embedded_settings, requests, sending, lambda: None)

    rows = await redrive.redrive(source, SUBSCRIPTION, held, run)
    by_id = {r.held.message.message_id: r for r in rows}
    assert by_id["a"].status == "loaded" and by_id["b"].status == "loaded"
    assert by_id["a-again"].status == "duplicate"  # the same unit: loaded once
    assert by_id["broken"].http_status == 400
    assert sorted(source.acked) == ["ack-a", "ack-a-again", "ack-b"]
    assert source.given_back == ["ack-broken"]


def message(data: bytes, message_id: str, **attributes: str) -> PulledMessage:
    deliveries = {"CloudPubSubDeadLetterSourceDeliveryCount": "5"}
    return PulledMessage(f"ack-{message_id}", message_id, data, {**attributes, **deliveries}, None)


def test_describe_says_what_each_message_carries() -> None:
    pipelines = load_pipelines(EXAMPLES / "pipelines.toml")
    resource = object_resource("landing", "orders/a.csv", 7, b"x")
    gcs = {
        "eventType": "OBJECT_FINALIZE",
        "payloadFormat": "JSON_API_V1",
        "bucketId": "landing",
        "objectId": "orders/a.csv",
        "objectGeneration": "7",
    }
    stored = redrive.describe(message(json.dumps(resource).encode(), "m1", **gcs), "s", pipelines)
    assert (stored.kind, stored.target, stored.deliveries) == (
        "OBJECT_FINALIZE",
        "gs://landing/orders/a.csv#7",
        5,
    )
    assert stored.units == (UnitKey("orders", "landing", "orders/a.csv", 7),)
    elsewhere = {**gcs, "bucketId": "other"}
    unmatched = redrive.describe(message(b"", "m2", **elsewhere), "s", pipelines)
    assert unmatched.units == () and unmatched.ledger == "no pipeline matches"
    sweep = redrive.describe(
        message(b'{"pipeline": "orders", "date": "2026-11-20"}', "m3"), "s", None
    )
    assert (sweep.kind, sweep.target) == ("sweep", "pipeline orders date 2026-11-20")
    ignored = redrive.describe(message(b"{}", "m4"), "s", pipelines)
    assert (ignored.kind, ignored.error) == ("ignored", "message names no pipeline")
    broken = redrive.describe(message(b"{not json", "m5", **gcs), "s", pipelines)
    assert broken.kind == "undecodable" and broken.error == "GCS notification data is not JSON"
