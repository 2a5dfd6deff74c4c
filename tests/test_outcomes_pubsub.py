"""Outcome events on the emulators: one message per unit, however often the unit is delivered.

Two service instances (each with its own clients) share the Firestore ledger, GCS and BigQuery
emulators and publish to one topic on the Pub/Sub emulator; a pull subscription is the
downstream consumer.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest

from service.adapters.gcp.gcs import GcsObjectStore
from service.models import EventMeta, ObjectFinalized, ObjectRef, UnitKey, UnitState
from service.results import Status
from service.wiring import build_backends, build_ingestor, load_config
from tests.emulator_fixtures import Emulators
from tests.pubsub_kit import csv_rows, pipelines_file, pubsub_kit

pytestmark = pytest.mark.emulators

ROWS_PER_FILE = 4
FILES = 3
DELIVERIES = 4  # concurrent deliveries of each event, per instance


async def test_one_outcome_message_per_unit_across_duplicate_deliveries(
    emulators: Emulators, unique: str, tmp_path: Path
) -> None:
    settings = emulators.settings(
        pipelines_file=pipelines_file(tmp_path, unique, unique), data_dir=tmp_path / "data"
    )
    gcs = GcsObjectStore.from_settings(settings)
    gcs.client.create_bucket(unique)
    refs = [
        await gcs.write(
            ObjectRef(unique, f"in/{n}.csv"), csv_rows(n * 100, ROWS_PER_FILE), "text/csv"
        )
        for n in range(FILES)
    ]
    await gcs.close()
    with pubsub_kit(settings, unique) as kit:
        topic = kit.topic("outcomes")
        consumer = kit.pull_subscription("downstream", topic)
        settings = emulators.settings(
            pipelines_file=settings.pipelines_file,
            ledger_collection=settings.ledger_collection,
            data_dir=settings.data_dir,
            outcome_topic=topic,
        )
        pipelines = load_config(settings)
        first, second = build_backends(settings), build_backends(settings)
        try:
            instances = [build_ingestor(settings, b, pipelines) for b in (first, second)]
            events = []
            for n, ref in enumerate(refs):
                meta = EventMeta(f"ev-{n}", "google.cloud.storage.object.v1.finalized", "test")
                events.append(ObjectFinalized(meta, await first.store.stat(ref)))
            # The first file alone creates the table: the BigQuery emulator fails concurrent
            # creations of one table ("Failed to commit DuckLake transaction").
            assert (await instances[0].handle(events[0])).status is Status.LOADED
            # Every event delivered several times at once to both instances...
            answers = await asyncio.gather(
                *(i.handle(e) for e in events for i in instances for _ in range(DELIVERIES))
            )
            assert Counter(a.status for a in answers)[Status.LOADED] == FILES - 1
            # ...and again afterwards (the platform's redeliveries of the busy ones).
            for event in events:
                for instance in instances:
                    assert (await instance.handle(event)).status is Status.DUPLICATE
            messages = kit.collect(consumer, FILES)
            assert await first.warehouse.count_rows(f"{unique}.rows") == FILES * ROWS_PER_FILE
            for ref in refs:
                assert ref.generation is not None
                key = UnitKey("rows", ref.bucket, ref.name, ref.generation)
                stored = await first.ledger_store.get(key.digest)
                assert stored is not None and stored.record.state is UnitState.COMPLETED
        finally:
            await first.close()
            await second.close()
    data = [json.loads(m.data) for m in messages]
    assert len(data) == FILES  # exactly one per unit: the extra pull found nothing more
    assert sorted(d["source"]["name"] for d in data) == [f"in/{n}.csv" for n in range(FILES)]
    for message, body in zip(messages, data, strict=True):
        assert body["state"] == "COMPLETED"
        assert body["rows_loaded"] == ROWS_PER_FILE
        assert body["table"] == f"{unique}.rows"
        assert body["job_id"]
        attributes = dict(message.attributes)
        assert attributes.pop("ce-type") == "gcp_ingest.unit.v1.completed"
        assert attributes.pop("ce-id") == f"{body['key']}-1"
        assert attributes.pop("ce-subject") == body["unit"]
        assert attributes.pop("ce-time").endswith("Z")
        assert attributes == {
            "ce-specversion": "1.0",
            "ce-source": "//gcp-ingest/pipelines/rows",
            "Content-Type": "application/json",
            "state": "COMPLETED",
            "pipeline": "rows",
            "table": f"{unique}.rows",
        }
