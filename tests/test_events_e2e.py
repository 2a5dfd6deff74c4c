"""End to end on the emulators: real pushes from the Pub/Sub emulator to a real ``ingest serve``.

1. A Scheduler-style message published to a topic with two push subscriptions (wrapped, and
   unwrapped with metadata) reaches the service twice; the sweep loads the files once.
2. A file uploaded to fake-gcs-server (notifications on) travels upload -> OBJECT_FINALIZE
   notification -> Pub/Sub emulator -> push -> the service, which loads it.
Push subscriptions get a retry policy and are deleted at the end (tests/pubsub_kit.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from service.adapters.gcp.bigquery import BigQueryWarehouse
from service.adapters.gcp.firestore import FirestoreLedgerStore
from service.adapters.gcp.gcs import GcsObjectStore
from service.models import ObjectRef, UnitKey, UnitState
from service.settings import Settings
from tests.emulator_fixtures import NOTIFY_TOPIC, PROJECT, Emulators
from tests.pubsub_kit import DELIVERY_SECONDS, PubSubKit, csv_rows, pipelines_file, pubsub_kit
from tests.pubsub_kit import warm_up as create_table
from tests.serving import Server, start_ingest_serve

pytestmark = [pytest.mark.emulators, pytest.mark.timeout(300)]


@pytest.fixture
def served(emulators: Emulators, unique: str, tmp_path: Path) -> Iterator[Server]:
    """``ingest serve`` on the GCP backend (the emulators): pipeline "rows" on bucket ``unique``."""
    pipelines = pipelines_file(tmp_path, unique, unique)
    env = emulators.serve_environ(pipelines, unique, tmp_path / "data")
    server = start_ingest_serve(env, tmp_path, tmp_path / "server.log")
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def settings(emulators: Emulators, unique: str, tmp_path: Path) -> Settings:
    """What the served app uses, for this test's own checks."""
    return emulators.settings(
        pipelines_file=tmp_path / "pipelines.toml",
        ledger_collection=unique,
        data_dir=tmp_path / "own",
    )


def unwrapped_push_subscription(kit: PubSubKit, name: str, topic: str, endpoint: str) -> str:
    """``--push-no-wrapper --push-no-wrapper-write-metadata``: data as body, metadata as headers."""
    path = f"projects/{PROJECT}/subscriptions/{kit.prefix}-{name}"
    kit.subscriber.create_subscription(
        request={
            "name": path,
            "topic": topic,
            "push_config": {"push_endpoint": endpoint, "no_wrapper": {"write_metadata": True}},
            "ack_deadline_seconds": 60,
            "retry_policy": {
                "minimum_backoff": timedelta(milliseconds=100),
                "maximum_backoff": timedelta(seconds=1),
            },
        }
    )
    kit.subscriptions.append(path)
    return path


async def wait_completed(settings: Settings, keys: list[UnitKey]) -> list[UnitState | None]:
    """Poll the ledger until every unit is COMPLETED (bounded); the states last seen."""
    ledger = FirestoreLedgerStore.from_settings(settings)
    states: list[UnitState | None] = []
    try:
        deadline = time.monotonic() + DELIVERY_SECONDS
        while time.monotonic() < deadline:
            found = [await ledger.get(key.digest) for key in keys]
            states = [f.record.state if f else None for f in found]
            if all(s is UnitState.COMPLETED for s in states):
                break
            await asyncio.sleep(0.2)
    finally:
        await ledger.close()
    return states


def wait_logged(server: Server, text: str, count: int = 1) -> str:
    """The server's log once ``text`` appears ``count`` times in it (bounded wait)."""
    deadline = time.monotonic() + DELIVERY_SECONDS
    log = server.output()
    while log.count(text) < count and time.monotonic() < deadline:
        time.sleep(0.2)
        log = server.output()
    return log


async def rows_in(settings: Settings, table: str) -> int:
    warehouse = BigQueryWarehouse.from_settings(settings)
    try:
        return await warehouse.count_rows(table)
    finally:
        await warehouse.close()


async def test_a_published_scheduler_message_is_pushed_and_swept_once(
    settings: Settings, unique: str, served: Server
) -> None:
    gcs = GcsObjectStore.from_settings(settings)
    gcs.client.create_bucket(unique)
    written = [
        await gcs.write(ObjectRef(unique, f"in/day-{n}.csv"), csv_rows(n * 100, 5), "text/csv")
        for n in range(2)
    ]
    await gcs.close()
    await create_table(settings, unique)  # loads in/warm-up.csv (1 row) before the pushes
    keys = [UnitKey("rows", unique, ref.name, ref.generation or 0) for ref in written]
    with pubsub_kit(settings, unique) as kit:
        topic = kit.topic("schedule")
        kit.push_subscription("wrapped", topic, served.url + "/")
        unwrapped_push_subscription(kit, "unwrapped", topic, served.url + "/")
        kit.publish(topic, json.dumps({"pipeline": "rows"}).encode(), origin="cloud-scheduler")
        states = await wait_completed(settings, keys)
        # Both deliveries of the one message are answered; the second finds the work done.
        log = wait_logged(served, "event ", count=2)
    assert states == [UnitState.COMPLETED] * 2
    assert "(pubsub-push, pubsub.push): " in log
    assert "(pubsub-push-unwrapped, pubsub.push.unwrapped): " in log
    assert await rows_in(settings, f"{unique}.rows") == 1 + 2 * 5


async def test_an_upload_travels_the_notification_chain_and_is_loaded(
    settings: Settings, unique: str, served: Server
) -> None:
    gcs = GcsObjectStore.from_settings(settings)
    gcs.client.create_bucket(unique)
    await create_table(settings, unique)
    with pubsub_kit(settings, unique) as kit:
        # fake-gcs-server publishes every finished upload of the session to this topic.
        kit.push_subscription(
            "notify", f"projects/{PROJECT}/topics/{NOTIFY_TOPIC}", served.url + "/"
        )
        ref = await gcs.write(ObjectRef(unique, "in/landed 2026 ü.csv"), csv_rows(1, 7), "text/csv")
        states = await wait_completed(
            settings, [UnitKey("rows", unique, ref.name, ref.generation or 0)]
        )
        log = wait_logged(served, "(pubsub-push+gcs-notification, OBJECT_FINALIZE): loaded")
    await gcs.close()
    assert states == [UnitState.COMPLETED]
    assert "(pubsub-push+gcs-notification, OBJECT_FINALIZE): loaded" in log
    assert await rows_in(settings, f"{unique}.rows") == 1 + 7
