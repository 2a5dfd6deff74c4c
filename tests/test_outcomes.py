"""Outcome events: built from what the ledger recorded, published once per unit that ends.

The ingestor runs on the real embedded adapters (a directory, DuckDB, SQLite); the publisher is
either the embedded JSONL file or a recording fake that also looks at the ledger when called.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.adapters.gcp.pubsub import PubSubOutcomePublisher
from service.adapters.local.directory_store import DirectoryObjectStore
from service.adapters.local.outcome_file import JsonlOutcomeFile
from service.answers import of_outcome
from service.errors import TransientError
from service.events.cloudevent import from_structured
from service.ingest import Ingestor
from service.models import (
    EventMeta,
    LedgerRecord,
    ObjectFinalized,
    ObjectInfo,
    ObjectRef,
    UnitKey,
    UnitResult,
    UnitState,
)
from service.outcomes import DiscardOutcomes, EndState, UnitEnded, unit_ended
from service.ports import IdempotencyStore
from service.pubsub_binding import to_message
from service.results import Status
from service.settings import Settings, replace_settings
from service.wiring import Backends, build_backends, build_ingestor, load_config, outcome_publisher
from tests.conftest import seed_examples

ORDERS = ObjectRef("landing", "orders/2026-11-20.csv")
ORDERS_ROWS = 5
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def record(state: UnitState, **changes: object) -> LedgerRecord:
    base = LedgerRecord(
        key="k" * 40,
        unit="orders:gs://landing/orders/a.csv#7",
        pipeline="orders",
        state=state,
        owner="w1",
        lease_expires_at=NOW,
        fingerprint="md5:x",
        attempt=2,
        created_at=NOW,
        updated_at=NOW,
        expire_at=NOW,
        event_id="ev-1",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


UNIT = UnitKey("orders", "landing", "orders/a.csv", 7)


def test_completed_message_carries_the_result_and_filter_attributes() -> None:
    result = UnitResult(rows_read=10, rows_loaded=9, rows_quarantined=1, job_id="job-1")
    ended = unit_ended(UNIT, record(UnitState.COMPLETED, result=result), "sales.orders")
    data = json.loads(ended.encode())
    assert data == {
        "version": 2,
        "key": "k" * 40,
        "unit": "orders:gs://landing/orders/a.csv#7",
        "state": "COMPLETED",
        "pipeline": "orders",
        "source": {
            "bucket": "landing",
            "name": "orders/a.csv",
            "generation": "7",
            "uri": "gs://landing/orders/a.csv",
        },
        "table": "sales.orders",
        "rows_read": 10,
        "rows_loaded": 9,
        "rows_quarantined": 1,
        "rows_rejected": 0,
        "job_id": "job-1",
        "quarantine_uri": None,
        "error": None,
        "event_id": "ev-1",
        "attempt": 2,
        "finished_at": "2026-11-21T12:00:00+00:00",
    }
    assert ended.attributes() == {
        "state": "COMPLETED",
        "pipeline": "orders",
        "table": "sales.orders",
    }


def test_the_cloudevent_in_the_pubsub_binding() -> None:
    result = UnitResult(rows_read=10, rows_loaded=9, job_id="job-1")
    ended = unit_ended(UNIT, record(UnitState.COMPLETED, result=result), "sales.orders")
    data, attributes = to_message(ended.cloudevent())
    assert json.loads(data) == ended.data()
    assert attributes == {
        "ce-specversion": "1.0",
        "ce-id": "k" * 40 + "-2",
        "ce-source": "//gcp-ingest/pipelines/orders",
        "ce-type": "gcp_ingest.unit.v1.completed",
        "ce-subject": "orders:gs://landing/orders/a.csv#7",
        "ce-time": "2026-11-21T12:00:00Z",
        "Content-Type": "application/json",
    }


def test_a_subject_past_pubsubs_attribute_limit_is_left_to_the_data() -> None:
    long_unit = UnitKey("orders", "landing", "x/" * 600, 7)
    ended = unit_ended(long_unit, record(UnitState.FAILED, unit=str(long_unit)), "sales.orders")
    _, attributes = to_message(ended.cloudevent())
    assert "ce-subject" not in attributes
    assert max(len(v.encode()) for v in attributes.values()) <= 1024
    assert ended.data()["unit"] == str(long_unit)


def test_a_failed_unit_is_failed_as_in_the_ledger() -> None:
    failed = record(UnitState.FAILED, error="extract: not found")
    ended = unit_ended(UNIT, failed, "sales.orders")
    assert ended.state is EndState.FAILED
    assert [s.value for s in EndState] == ["COMPLETED", "FAILED"]  # no third name
    assert ended.data()["error"] == "extract: not found"
    assert ended.data()["rows_loaded"] == 0  # no result recorded: zero, not missing


def test_a_unit_in_progress_has_no_outcome() -> None:
    with pytest.raises(ValueError, match="still in progress"):
        unit_ended(UNIT, record(UnitState.IN_PROGRESS), "sales.orders")


class Recorder:
    """A publisher that keeps what it was given and what the ledger said at that moment."""

    def __init__(self, ledger_store: IdempotencyStore, *, fail: bool = False) -> None:
        self.ledger_store = ledger_store
        self.fail = fail
        self.published: list[UnitEnded] = []
        self.ledger_states: list[UnitState | None] = []

    async def publish(self, outcome: UnitEnded) -> None:
        stored = await self.ledger_store.get(outcome.key)
        self.ledger_states.append(stored.record.state if stored else None)
        if self.fail:
            raise TransientError("topic unavailable")
        self.published.append(outcome)

    async def close(self) -> None:
        return None


@pytest.fixture
async def backends(embedded_settings: Settings) -> AsyncIterator[Backends]:
    seed_examples(embedded_settings)
    opened = build_backends(embedded_settings)
    try:
        yield opened
    finally:
        await opened.close()


def ingestor(settings: Settings, backends: Backends) -> Ingestor:
    return build_ingestor(settings, backends, load_config(settings))


async def finalized(
    backends: Backends, ref: ObjectRef = ORDERS, event_id: str = "e1"
) -> ObjectFinalized:
    info = await backends.store.stat(ref)
    meta = EventMeta(event_id, "google.cloud.storage.object.v1.finalized", "test")
    return ObjectFinalized(meta, info)


def jsonl(settings: Settings) -> list[dict[str, Any]]:
    """The data of each outcome event in the file (each line a structured CloudEvent)."""
    path = settings.data_dir / "outcomes.jsonl"
    return [json.loads(line)["data"] for line in path.read_text().splitlines()]


async def test_embedded_default_writes_one_line_per_unit_and_none_for_duplicates(
    embedded_settings: Settings, backends: Backends
) -> None:
    assert isinstance(backends.outcomes, JsonlOutcomeFile)
    service = ingestor(embedded_settings, backends)
    event = await finalized(backends)
    first = await service.handle(event)
    assert first.status is Status.LOADED
    again = await service.handle(replace(event, meta=replace(event.meta, event_id="e2")))
    assert again.status is Status.DUPLICATE
    lines = jsonl(embedded_settings)
    assert len(lines) == 1
    assert lines[0]["state"] == "COMPLETED"
    assert lines[0]["rows_loaded"] == ORDERS_ROWS
    assert lines[0]["event_id"] == "e1"
    assert lines[0]["source"] == {
        "bucket": "landing",
        "name": "orders/2026-11-20.csv",
        "generation": "1",
        "uri": "gs://landing/orders/2026-11-20.csv",
    }


async def test_concurrent_duplicates_publish_one_completed(
    embedded_settings: Settings, backends: Backends
) -> None:
    recorder = Recorder(backends.ledger_store)
    service = ingestor(embedded_settings, replace(backends, outcomes=recorder))
    event = await finalized(backends)
    outcomes = await asyncio.gather(*(service.handle(event) for _ in range(6)))
    # Each answer is loaded, a duplicate, or busy (retry later); exactly one unit loaded.
    assert sum(o.status is Status.LOADED for o in outcomes) == 1
    for _ in range(3):  # the redeliveries of the busy ones
        await service.handle(event)
    assert [o.state for o in recorder.published] == [EndState.COMPLETED]


async def test_published_after_the_ledger_recorded_the_end(
    embedded_settings: Settings, backends: Backends
) -> None:
    recorder = Recorder(backends.ledger_store)
    service = ingestor(embedded_settings, replace(backends, outcomes=recorder))
    await service.handle(await finalized(backends))
    assert recorder.ledger_states == [UnitState.COMPLETED]


async def test_forced_rerun_publishes_again(
    embedded_settings: Settings, backends: Backends
) -> None:
    recorder = Recorder(backends.ledger_store)
    service = ingestor(embedded_settings, replace(backends, outcomes=recorder))
    event = await finalized(backends)
    await service.handle(event)
    await service.handle(event)
    forced = await service.handle(event, force=True)
    assert forced.status is Status.LOADED
    assert [(o.state, o.attempt) for o in recorder.published] == [
        (EndState.COMPLETED, 1),
        (EndState.COMPLETED, 2),
    ]


async def test_publish_failure_never_changes_the_outcome_and_is_logged(
    embedded_settings: Settings, backends: Backends, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(backends.ledger_store, fail=True)
    service = ingestor(embedded_settings, replace(backends, outcomes=recorder))
    event = await finalized(backends)
    with caplog.at_level(logging.ERROR, logger="service.ingest"):
        outcome = await service.handle(event)
    assert outcome.status is Status.LOADED
    assert outcome.units[0].rows_loaded == ORDERS_ROWS
    stored = await backends.ledger_store.get(UnitKey("orders", "landing", ORDERS.name, 1).digest)
    assert stored is not None and stored.record.state is UnitState.COMPLETED
    lost = [r for r in caplog.records if "not published" in r.getMessage()]
    assert len(lost) == 1
    assert "topic unavailable" in lost[0].getMessage()
    assert '"state":"COMPLETED"' in lost[0].getMessage()  # the message, to send by hand


async def test_permanent_failure_publishes_failed(
    embedded_settings: Settings, backends: Backends
) -> None:
    recorder = Recorder(backends.ledger_store)
    service = ingestor(embedded_settings, replace(backends, outcomes=recorder))
    # A thin event (no size) for an object that is not there: looking it up fails for good.
    info = ObjectInfo(ObjectRef("landing", "orders/gone.csv", 5), size=0)
    meta = EventMeta("e-gone", "google.cloud.storage.object.v1.finalized", "test")
    outcome = await service.handle(ObjectFinalized(meta, info))
    assert outcome.status is Status.FAILED
    # Over HTTP: which stage and what kind of fault, not the store's own words.
    assert of_outcome(outcome).body["reason"] == "extract: the object does not exist"
    again = await service.handle(ObjectFinalized(meta, info))
    assert again.status is Status.DUPLICATE  # answered from the ledger: no second message
    assert [o.state for o in recorder.published] == [EndState.FAILED]
    assert recorder.published[0].error
    assert recorder.published[0].unit == UnitKey("orders", "landing", "orders/gone.csv", 5)


async def test_too_many_bad_rows_publishes_failed_with_honest_counts(
    embedded_settings: Settings, backends: Backends
) -> None:
    recorder = Recorder(backends.ledger_store)
    service = ingestor(embedded_settings, replace(backends, outcomes=recorder))
    bucket = DirectoryObjectStore(embedded_settings.data_dir / "buckets")
    # customers allows no bad row; the second row has no customer_id (REQUIRED).
    bucket.put("landing", "customers/bad.csv", b"customer_id,name\nC1,Ann\n,Bob\n", "text/csv")
    event = await finalized(backends, ObjectRef("landing", "customers/bad.csv"), "e-bad")
    outcome = await service.handle(event)
    assert outcome.status is Status.FAILED
    [ended] = recorder.published
    assert ended.state is EndState.FAILED
    # Rejected whole: none loaded; the one bad row is quarantined, the good one rejected with it.
    data = ended.data()
    assert (data["rows_loaded"], data["rows_quarantined"], data["rows_rejected"]) == (0, 1, 1)
    assert data["error"] is not None and data["error"].startswith("validate: 1 of 2 rows bad")
    assert ended.attributes() == {
        "state": "FAILED",
        "pipeline": "customers",
        "table": "sales.customers",
    }


async def test_jsonl_file_lines_are_structured_cloudevents(tmp_path: Path) -> None:
    target = JsonlOutcomeFile(tmp_path / "deep" / "outcomes.jsonl")
    done = unit_ended(UNIT, record(UnitState.COMPLETED), "sales.orders")
    failed = unit_ended(UNIT, record(UnitState.FAILED, error="bad"), "sales.orders")
    await asyncio.gather(*(target.publish(o) for o in [done, failed] * 20))
    lines = (tmp_path / "deep" / "outcomes.jsonl").read_text().splitlines()
    assert len(lines) == 40
    events = [from_structured(line.encode()) for line in lines]  # the strict reader takes them
    assert events[0].data in (done.data(), failed.data())
    assert (
        sorted(e.type for e in events)
        == ["gcp_ingest.unit.v1.completed"] * 20 + ["gcp_ingest.unit.v1.failed"] * 20
    )
    first = json.loads(lines[0])
    assert (first["specversion"], first["datacontenttype"]) == ("1.0", "application/json")


async def test_wiring_picks_the_publisher(embedded_settings: Settings) -> None:
    embedded = outcome_publisher(embedded_settings)
    assert isinstance(embedded, JsonlOutcomeFile)
    assert embedded.path == embedded_settings.data_dir / "outcomes.jsonl"
    gcp = replace_settings(embedded_settings, backend="gcp", project="p")
    assert isinstance(outcome_publisher(gcp), DiscardOutcomes)
    # A topic wins on either backend; the emulator host keeps the client off the network.
    topic = replace_settings(
        embedded_settings, outcome_topic="outcomes", project="p", pubsub_emulator_host="127.0.0.1:9"
    )
    chosen = outcome_publisher(topic)
    assert isinstance(chosen, PubSubOutcomePublisher)
    assert chosen.topic.topic == "projects/p/topics/outcomes"
    await chosen.close()
