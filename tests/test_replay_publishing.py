"""``ingest replay --to-topic``: each recorded event becomes the message that carries it.

Every recorded delivery shape of tests/events/ goes through ``outgoing`` and back through the
decoder as a push of that message: the event must come out the same. On the emulators, replay
to a topic reaches a served app through a real push subscription.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from service.adapters.gcp.firestore import FirestoreLedgerStore
from service.adapters.gcp.gcs import GcsObjectStore
from service.cli import main
from service.models import (
    Event,
    Ignored,
    ObjectFinalized,
    ObjectRef,
    SweepRequested,
    UnitKey,
    UnitRequested,
    UnitState,
)
from service.ports import IdempotencyStore
from service.recording import RecordedRequest, event_of, from_json, to_json
from service.replay.publishing import outgoing
from service.samples import (
    resource_from_info,
    scheduler_push,
    storage_cloudevent,
    storage_notification_push,
    storage_structured_cloudevent,
)
from tests.emulator_fixtures import Emulators
from tests.pubsub_kit import DELIVERY_SECONDS, csv_rows, pipelines_file, pubsub_kit, warm_up
from tests.serving import Server, start_ingest_serve

EVENTS = Path(__file__).resolve().parent / "events"


def recorded(path: Path) -> RecordedRequest:
    return from_json(json.loads(path.read_text()), path.name)


def as_push(data: bytes, attributes: dict[str, str]) -> RecordedRequest:
    body = {
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": attributes,
            "messageId": "republished-1",
            "publishTime": "2026-11-22T00:00:00Z",
        },
        "subscription": "projects/p/subscriptions/s",
    }
    return RecordedRequest({"Content-Type": "application/json"}, json.dumps(body).encode())


def essence(event: Event) -> tuple[object, ...]:
    """What running the event depends on (not its id, shape or delivery details)."""
    if isinstance(event, ObjectFinalized):
        info = event.object
        return (
            "object",
            info.ref,
            info.size,
            info.md5_base64,
            info.crc32c_base64,
            info.content_type,
            info.content_encoding,
        )
    if isinstance(event, SweepRequested):
        return ("sweep", event.pipeline, event.date, event.prefix)
    if isinstance(event, UnitRequested):
        return ("unit", event.pipeline, event.object)
    return ("ignored", event.reason)


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda p: p.stem)
def test_the_published_message_carries_the_same_event(path: Path) -> None:
    request = recorded(path)
    original = event_of(request)
    item = outgoing(request)
    if isinstance(original, str):  # not an event at all: nothing is published
        assert item.bad and item.data is None and item.skipped == original
        return
    assert item.event_id == original.meta.event_id
    if item.data is None:  # only storage events no notification could carry
        assert isinstance(original, Ignored)
        assert item.skipped is not None and original.reason in item.skipped
        return
    assert item.attributes is not None
    again = event_of(as_push(item.data, item.attributes))
    assert not isinstance(again, str), again
    assert essence(again) == essence(original)


def test_a_recorded_push_is_republished_byte_for_byte() -> None:
    request = recorded(EVENTS / "push_wrapped_camelcase_scheduler.json")
    message = json.loads(request.body)["message"]
    item = outgoing(request)
    assert item.data == base64.b64decode(message["data"])
    assert item.attributes == message["attributes"]


def test_a_storage_cloudevent_becomes_a_gcs_notification() -> None:
    request = recorded(EVENTS / "eventarc_storage_finalized.json")
    event = event_of(request)
    assert isinstance(event, ObjectFinalized)
    item = outgoing(request)
    assert item.attributes is not None and item.data is not None
    ref = event.object.ref
    assert item.attributes["eventType"] == "OBJECT_FINALIZE"
    assert item.attributes["payloadFormat"] == "JSON_API_V1"
    assert (item.attributes["bucketId"], item.attributes["objectId"]) == (ref.bucket, ref.name)
    assert item.attributes["objectGeneration"] == str(ref.generation)
    assert json.loads(item.data)["md5Hash"] == event.object.md5_base64


def test_force_cannot_go_through_a_topic(tmp_path: Path) -> None:
    events = tmp_path / "e.json"
    events.write_text((EVENTS / "push_wrapped_camelcase_scheduler.json").read_text())
    result = CliRunner().invoke(
        main, ["replay", str(events), "--to-topic", "projects/p/topics/t", "--force"]
    )
    assert result.exit_code == 2
    assert "--force cannot travel through a topic" in result.output


def test_exactly_one_destination(tmp_path: Path) -> None:
    events = tmp_path / "e.json"
    events.write_text((EVENTS / "push_wrapped_camelcase_scheduler.json").read_text())
    result = CliRunner().invoke(
        main, ["replay", str(events), "--in-process", "--to-topic", "projects/p/topics/t"]
    )
    assert result.exit_code == 2
    assert "exactly one of --to URL, --in-process or --to-topic" in result.output


def test_dry_run_publishes_nothing(tmp_path: Path) -> None:
    events = tmp_path / "e.json"
    events.write_text((EVENTS / "eventarc_storage_deleted.json").read_text())
    (tmp_path / "f.json").write_text((EVENTS / "eventarc_storage_finalized.json").read_text())
    # No Pub/Sub anywhere: a dry run must not need one.
    result = CliRunner().invoke(
        main,
        ["replay", str(tmp_path), "--to-topic", "projects/p/topics/t", "--dry-run", "--json"],
        env={"PUBSUB_EMULATOR_HOST": "127.0.0.1:9"},
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(line["status"] for line in lines) == ["skipped", "would-publish"]


@pytest.fixture
def served(emulators: Emulators, unique: str, tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """A real ``ingest serve`` on the GCP backend (the emulators) with one pipeline."""
    pipelines = pipelines_file(tmp_path, unique, unique)
    env = emulators.serve_environ(pipelines, unique, tmp_path / "data")
    server = start_ingest_serve(env, tmp_path, tmp_path / "server.log")
    try:
        yield server, pipelines
    finally:
        server.kill()


async def invoke(args: list[str], env: dict[str, str]) -> Result:
    """The CLI in a thread: its own asyncio.run cannot share this test's running loop."""
    return await asyncio.to_thread(CliRunner().invoke, main, args, env=env)


@pytest.mark.emulators
async def test_replay_to_a_topic_reaches_the_service_through_push(
    emulators: Emulators, unique: str, tmp_path: Path, served: tuple[Server, Path]
) -> None:
    server, pipelines = served
    settings = emulators.settings(pipelines_file=pipelines, ledger_collection=unique)
    gcs = GcsObjectStore.from_settings(settings)
    gcs.client.create_bucket(unique)
    infos = []
    for n in range(4):
        written = await gcs.write(ObjectRef(unique, f"in/{n}.csv"), csv_rows(n * 10, 3), "text/csv")
        infos.append(await gcs.stat(written))
    await gcs.close()
    await warm_up(settings, unique)
    resources = [resource_from_info(info) for info in infos]
    # Three storage events in three shapes, and a scheduler message: its sweep finds the 4th.
    requests = [
        storage_cloudevent(resources[0]),
        storage_structured_cloudevent(resources[1]),
        storage_notification_push(resources[2]),
        scheduler_push("rows"),
    ]
    recording = tmp_path / "events.jsonl"
    recording.write_text("".join(json.dumps(to_json(r.headers, r.body)) + "\n" for r in requests))
    keys = [UnitKey("rows", unique, i.ref.name, i.ref.generation or 0) for i in infos]
    ledger = FirestoreLedgerStore.from_settings(settings)
    with pubsub_kit(settings, unique) as kit:
        topic = kit.topic("replay")
        kit.push_subscription("push", topic, server.url + "/")
        result = await invoke(["replay", str(recording), "--to-topic", topic, "--json"], {})
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert [line["status"] for line in lines] == ["published"] * 4
        states = await _wait_completed(ledger, keys)
    await ledger.close()
    assert states == [UnitState.COMPLETED] * 4
    # Each arrived as a push of a Pub/Sub message, never as the shape it was recorded in.
    log = server.output()
    assert log.count("(pubsub-push+gcs-notification,") >= 3
    assert "(pubsub-push, pubsub.push)" in log  # the scheduler message
    assert "(cloudevent-" not in log


async def _wait_completed(ledger: IdempotencyStore, keys: list[UnitKey]) -> list[UnitState | None]:
    """Poll the ledger until every unit is COMPLETED (bounded); the states last seen."""
    deadline = time.monotonic() + DELIVERY_SECONDS
    states: list[UnitState | None] = []
    while time.monotonic() < deadline:
        found = [await ledger.get(key.digest) for key in keys]
        states = [f.record.state if f else None for f in found]
        if all(s is UnitState.COMPLETED for s in states):
            break
        await asyncio.sleep(0.2)
    return states
