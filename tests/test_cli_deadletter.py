"""``ingest deadletter``: a dead-letter topic filled by a failing push subscription, re-driven.

The real chain on the emulators: GCS notifications published to a topic, pushed to a served
app whose backends fail (INGEST_FAULT_RATE=1: it answers 503) until Pub/Sub gives up after the
maximum delivery attempts and dead-letters them. Then the commands run as an operator would:
list (a peek), redrive while still broken (nothing acknowledged), --dry-run (nothing consumed),
and after the fault is fixed: redrive to the healthy app and in-process. Every event ends loaded
once, and downstream sees one outcome message per unit.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from service.adapters.gcp.bigquery import BigQueryWarehouse
from service.adapters.gcp.firestore import FirestoreLedgerStore
from service.adapters.gcp.gcs import GcsObjectStore
from service.cli import main
from service.models import ObjectInfo, ObjectRef, UnitKey, UnitState
from service.samples import resource_from_info, storage_notification_push
from tests.emulator_fixtures import Emulators
from tests.pubsub_kit import (
    PubSubKit,
    csv_rows,
    eventarc_message,
    pipelines_file,
    pubsub_kit,
    warm_up,
)
from tests.serving import Server, start_ingest_serve

FILES = 3
ROWS_PER_FILE = 4
MAX_DELIVERY_ATTEMPTS = 5
# Subscriptions dead-lettering the same files side by side; the first to dead-letter them all
# is the test's. They have no retry policy: with one, the emulator puts a message pushed more
# than once in a delayed queue that at times holds it for minutes (docs/emulators.md; 1 of 3
# runs stalled for the whole 180 s), without one it redelivers at once (6 of 6 runs took 16 s).
SIDE_BY_SIDE = 4
# How long the side-by-side subscriptions have to dead-letter every file.
DEAD_LETTER_SECONDS = 180.0
# Seconds each pull of the commands waits; the emulator answers an empty pull within it.
WAIT = ["--wait", "2"]


def test_usage_needs_exactly_one_destination() -> None:
    result = CliRunner().invoke(main, ["deadletter", "redrive", "projects/p/subscriptions/s"])
    assert result.exit_code == 2
    assert "exactly one of --to URL or --in-process" in result.output


def test_list_help_says_it_is_a_peek() -> None:
    result = CliRunner().invoke(main, ["deadletter", "list", "--help"])
    assert result.exit_code == 0
    assert "This is a peek" in result.output
    assert "nothing is acknowledged" in result.output


class Setup:
    """The names and settings of one test: bucket, dataset, ledger collection, pipelines."""

    def __init__(self, emulators: Emulators, unique: str, tmp_path: Path) -> None:
        self.emulators = emulators
        self.unique = unique
        self.tmp_path = tmp_path
        self.pipelines = pipelines_file(tmp_path, unique, unique)
        self.settings = emulators.settings(
            pipelines_file=self.pipelines, ledger_collection=unique, data_dir=tmp_path / "data"
        )

    def environ(self, outcome_topic: str) -> dict[str, str]:
        env = self.emulators.serve_environ(self.pipelines, self.unique, self.tmp_path / "data")
        return {**env, "INGEST_OUTCOME_TOPIC": outcome_topic}

    def serve(self, outcome_topic: str, name: str, *, faulty: bool) -> Server:
        env = self.environ(outcome_topic)
        if faulty:
            env["INGEST_FAULT_RATE"] = "1.0"  # every object read fails: 503, retry
        return start_ingest_serve(env, self.tmp_path, self.tmp_path / f"{name}.log")


@pytest.fixture
def setup(emulators: Emulators, unique: str, tmp_path: Path) -> Setup:
    return Setup(emulators, unique, tmp_path)


@pytest.fixture
def kit(setup: Setup) -> Iterator[PubSubKit]:
    with pubsub_kit(setup.settings, setup.unique) as made:
        yield made


async def invoke(args: list[str], env: dict[str, str]) -> Result:
    """The CLI in a thread: its own asyncio.run cannot share this test's running loop."""
    return await asyncio.to_thread(CliRunner().invoke, main, args, env=env)


def lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


async def land(setup: Setup) -> list[ObjectInfo]:
    gcs = GcsObjectStore.from_settings(setup.settings)
    gcs.client.create_bucket(setup.unique)
    infos = []
    for n in range(FILES):
        ref = ObjectRef(setup.unique, f"in/{n}.csv")
        written = await gcs.write(ref, csv_rows(n * 100, ROWS_PER_FILE), "text/csv")
        infos.append(await gcs.stat(written))
    await gcs.close()
    await warm_up(setup.settings, setup.unique)
    return infos


def notify(kit: PubSubKit, topic: str, info: ObjectInfo) -> None:
    """What Cloud Storage publishes for a finished upload (JSON_API_V1)."""
    message = json.loads(storage_notification_push(resource_from_info(info)).body)["message"]
    kit.publish(topic, base64.b64decode(message["data"]), **message["attributes"])


def dead_lettered(kit: PubSubKit, infos: list[ObjectInfo], endpoint: str) -> str:
    """A subscription to a dead-letter topic holding one dead letter per file: the files'
    notifications pushed to ``endpoint`` (which refuses them) by SIDE_BY_SIDE subscriptions."""
    watches: dict[str, str] = {}  # dead-letter subscription -> its twin that counts arrivals
    for n in range(SIDE_BY_SIDE):
        notifications, dead_letters = kit.topic(f"notify{n}"), kit.topic(f"dlq{n}")
        watches[kit.pull_subscription(f"dead{n}", dead_letters)] = kit.pull_subscription(
            f"watch{n}", dead_letters
        )
        kit.push_subscription(
            f"push{n}",
            notifications,
            endpoint,
            dead_letter_topic=dead_letters,
            max_delivery_attempts=MAX_DELIVERY_ATTEMPTS,
            retry_policy=False,
        )
        for info in infos:
            notify(kit, notifications, info)
    arrived = dict.fromkeys(watches, 0)
    deadline = time.monotonic() + DEAD_LETTER_SECONDS
    while time.monotonic() < deadline:
        for dead, watch in watches.items():
            arrived[dead] += len(kit.pull(watch, ack=True))
            assert arrived[dead] <= FILES  # never more than one dead letter per message
            if arrived[dead] == FILES:
                return dead
    pytest.fail(f"the emulator dead-lettered fewer than {FILES} messages: {arrived}")


@pytest.mark.emulators
@pytest.mark.timeout(DEAD_LETTER_SECONDS + 180)  # the dead-lettering, then the redrives
async def test_dead_letters_are_redriven_once_the_fault_is_fixed(
    setup: Setup, kit: PubSubKit
) -> None:
    infos = await land(setup)
    objects = {f"{i.ref.uri}#{i.ref.generation}" for i in infos}
    outcomes = kit.topic("outcomes")
    downstream = kit.pull_subscription("downstream", outcomes)
    env = setup.environ(outcomes)

    faulty = setup.serve(outcomes, "faulty", faulty=True)
    try:
        dead = dead_lettered(kit, infos, faulty.url + "/")
        peek = await invoke(["deadletter", "list", dead, "--json", *WAIT], env)
        assert peek.exit_code == 0, peek.output
        listed = lines(peek)
        assert {row["object"] for row in listed} == objects
        for row in listed:
            assert row["type"] == "OBJECT_FINALIZE"
            assert row["deliveries"] == MAX_DELIVERY_ATTEMPTS
            assert row["ledger"] == "rows: IN_PROGRESS"  # claimed, then released on each 503
        table = await invoke(["deadletter", "list", dead, *WAIT], env)  # the same, for people
        assert table.exit_code == 0, table.output
        assert f"{FILES} messages (peek: nothing consumed)" in table.output
        assert all(row["message_id"] in table.output for row in listed)

        # Still broken: every event answers 503, so every message stays.
        broken = await invoke(
            ["deadletter", "redrive", dead, "--to", faulty.url + "/", "--json", *WAIT],
            env,
        )
        assert broken.exit_code == 1
        assert [(r["http_status"], r["acked"]) for r in lines(broken)] == [(503, False)] * FILES
        assert f"0 acknowledged, {FILES} given back" in broken.stderr

        dry = await invoke(["deadletter", "redrive", dead, "--dry-run", "--json", *WAIT], env)
        assert dry.exit_code == 0, dry.output
        assert sorted(r["status"] for r in lines(dry)) == ["would-run"] * FILES
        assert not any(r["acked"] for r in lines(dry))
        # Nothing was consumed: all of them are still there.
        assert {m.message_id for m in kit.pull(dead, ack=False)} == {
            r["message_id"] for r in listed
        }
    finally:
        faulty.kill()

    healthy = setup.serve(outcomes, "healthy", faulty=False)
    try:
        one = await invoke(
            [
                "deadletter",
                "redrive",
                dead,
                "--to",
                healthy.url + "/",
                "--limit",
                "1",
                "--json",
                *WAIT,
            ],
            env,
        )
        assert one.exit_code == 0, one.output
        assert [(r["status"], r["acked"]) for r in lines(one)] == [("loaded", True)]
        rest = await invoke(["deadletter", "redrive", dead, "--in-process", "--json", *WAIT], env)
        assert rest.exit_code == 0, rest.output
        assert [(r["status"], r["acked"]) for r in lines(rest)] == [("loaded", True)] * (FILES - 1)
        empty = await invoke(["deadletter", "list", dead, "--json", *WAIT], env)
        assert lines(empty) == []
    finally:
        healthy.kill()

    warehouse = BigQueryWarehouse.from_settings(setup.settings)
    assert await warehouse.count_rows(f"{setup.unique}.rows") == FILES * ROWS_PER_FILE + 1
    await warehouse.close()
    ledger = FirestoreLedgerStore.from_settings(setup.settings)
    for info in infos:
        key = UnitKey("rows", setup.unique, info.ref.name, info.ref.generation or 0)
        stored = await ledger.get(key.digest)
        assert stored is not None and stored.record.state is UnitState.COMPLETED
    await ledger.close()
    announced = [json.loads(m.data) for m in kit.collect(downstream, FILES)]
    assert sorted(a["source"]["name"] for a in announced) == sorted(i.ref.name for i in infos)
    assert {a["state"] for a in announced} == {"COMPLETED"}


@pytest.mark.emulators
async def test_a_dead_lettered_eventarc_delivery_is_redriven_as_a_cloudevent(
    setup: Setup, kit: PubSubKit
) -> None:
    # Issue: Eventarc's messages carry the CloudEvent as ce- attributes with the data as the
    # body; re-drive sent them as a push envelope, and the service answered "ignored".
    [info, *_] = await land(setup)
    dead_letters = kit.topic("dlq")
    dead = kit.pull_subscription("dead", dead_letters)
    data, attributes = eventarc_message(resource_from_info(info), "eventarc-1")
    kit.publish(dead_letters, data, **attributes, CloudPubSubDeadLetterSourceDeliveryCount="5")
    env = setup.environ(kit.topic("outcomes"))
    peek = await invoke(["deadletter", "list", dead, "--json", *WAIT], env)
    assert [(r["type"], r["object"]) for r in lines(peek)] == [
        ("google.cloud.storage.object.v1.finalized", f"{info.ref.uri}#{info.ref.generation}")
    ]
    done = await invoke(["deadletter", "redrive", dead, "--in-process", "--json", *WAIT], env)
    assert done.exit_code == 0, done.output
    assert [(r["status"], r["acked"]) for r in lines(done)] == [("loaded", True)]
    warehouse = BigQueryWarehouse.from_settings(setup.settings)
    assert await warehouse.count_rows(f"{setup.unique}.rows") == ROWS_PER_FILE + 1  # + warm-up
    await warehouse.close()
