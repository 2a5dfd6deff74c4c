"""The ledger inside the use case: claim -> heartbeat -> run -> complete / fail / release.

Real embedded adapters (a directory as bucket, DuckDB as warehouse, SQLite or memory as ledger)
and a fake clock, so lease expiry is a step of the test rather than a wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from service.adapters.local.directory_store import DirectoryObjectStore
from service.adapters.local.duckdb_warehouse import DuckDbWarehouse
from service.adapters.local.sqlite_ledger import SqliteLedgerStore
from service.adapters.memory import MemoryLedgerStore
from service.errors import TransientError
from service.ingest import Ingestor
from service.ledger import Ledger
from service.models import (
    EventMeta,
    LedgerRecord,
    ObjectFinalized,
    ObjectInfo,
    ObjectRef,
    UnitKey,
    UnitRequested,
    UnitResult,
    UnitState,
)
from service.pipeline.context import UnitContext
from service.pipeline.pipelines_file import load_pipelines
from service.pipeline.runner import Runner
from service.ports import IdempotencyStore, ObjectStore
from service.results import Status, UnitOutcome
from service.settings import Settings
from tests.conftest import EXAMPLES, seed_examples
from tests.crash_kit import DiesBeforeCompletion, FakeClock, Killed

LEASE = 60.0
ORDERS = ObjectRef("landing", "orders/2026-11-20.csv")
ORDERS_ROWS = 5


@dataclass
class World:
    """One machine's backends; each ``instance()`` is another service instance on them."""

    settings: Settings
    objects: DirectoryObjectStore
    warehouse: DuckDbWarehouse
    ledger_store: IdempotencyStore
    clock: FakeClock

    def instance(
        self,
        name: str,
        *,
        ledger_store: IdempotencyStore | None = None,
        runner: Runner | None = None,
        objects: ObjectStore | None = None,
        stall_seconds: float = LEASE / 2,
    ) -> Ingestor:
        store = ledger_store or self.ledger_store
        ledger = Ledger(store, owner=name, lease_seconds=LEASE, clock=self.clock)
        objects = objects or self.objects
        return Ingestor(
            load_pipelines(EXAMPLES / "pipelines.toml"),
            objects,
            ledger,
            runner or Runner(objects, self.warehouse, chunk_bytes=64 * 1024),
            renew_every_seconds=LEASE / 3,
            stall_seconds=stall_seconds,
            max_units_in_flight=4,
        )

    async def event(self, ref: ObjectRef = ORDERS, event_id: str = "e1") -> ObjectFinalized:
        info = await self.objects.stat(ref)
        meta = EventMeta(
            event_id=event_id,
            event_type="google.cloud.storage.object.v1.finalized",
            source=f"//storage.googleapis.com/projects/_/buckets/{ref.bucket}",
        )
        return ObjectFinalized(meta, info)

    async def rows(self, table: str = "sales.orders") -> int:
        return await self.warehouse.count_rows(table)

    async def record(self, info: ObjectInfo, pipeline: str = "orders") -> LedgerRecord:
        ref = info.ref
        assert ref.generation is not None
        key = UnitKey(pipeline, ref.bucket, ref.name, ref.generation)
        stored = await self.ledger_store.get(key.digest)
        assert stored is not None
        return stored.record


@contextlib.asynccontextmanager
async def make_world(settings: Settings, kind: str) -> AsyncIterator[World]:
    seed_examples(settings)
    root = settings.data_dir
    ledger_store: IdempotencyStore = (
        SqliteLedgerStore(root / "ledger.sqlite3") if kind == "sqlite" else MemoryLedgerStore()
    )
    made = World(
        settings,
        DirectoryObjectStore(root / "buckets"),
        DuckDbWarehouse(root / "warehouse.duckdb"),
        ledger_store,
        FakeClock(datetime(2026, 11, 21, 12, 0, tzinfo=UTC)),
    )
    try:
        yield made
    finally:
        await made.warehouse.close()
        await ledger_store.close()


@pytest.fixture(params=["sqlite", "memory"])
async def world(
    request: pytest.FixtureRequest, embedded_settings: Settings
) -> AsyncIterator[World]:
    async with make_world(embedded_settings, request.param) as made:
        yield made


@pytest.fixture
async def memory_world(
    embedded_settings: Settings,
) -> AsyncIterator[tuple[World, MemoryLedgerStore]]:
    """A world whose ledger store has an outage switch."""
    async with make_world(embedded_settings, "memory") as made:
        assert isinstance(made.ledger_store, MemoryLedgerStore)
        yield made, made.ledger_store


def only(units: tuple[UnitOutcome, ...]) -> UnitOutcome:
    [unit] = units
    return unit


async def test_crash_between_load_and_completion_loads_rows_once(world: World) -> None:
    event = await world.event()
    crashing = world.instance("instance-1", ledger_store=DiesBeforeCompletion(world.ledger_store))
    with pytest.raises(Killed):
        await crashing.handle(event)
    assert await world.rows() == ORDERS_ROWS  # the load happened; the ledger never heard
    first = await world.record(event.object)
    assert (first.state, first.owner) == (UnitState.IN_PROGRESS, "instance-1")

    survivor = world.instance("instance-2")
    early = await survivor.handle(event)
    assert early.status is Status.BUSY  # the dead instance's lease is still live: 429
    world.clock.advance(LEASE + 1)
    redelivered = await survivor.handle(event)
    assert redelivered.status is Status.LOADED
    assert only(redelivered.units).rows_loaded == ORDERS_ROWS
    assert await world.rows() == ORDERS_ROWS  # the job id made the warehouse adopt the load
    done = await world.record(event.object)
    assert (done.state, done.owner, done.attempt) == (UnitState.COMPLETED, "instance-2", 2)
    assert done.result is not None
    assert done.result.rows_loaded == ORDERS_ROWS
    assert done.result.job_id is not None
    assert (await survivor.handle(event)).status is Status.DUPLICATE


async def test_ledger_outage_at_completion_is_retried_not_reported_done(
    memory_world: tuple[World, MemoryLedgerStore],
) -> None:
    world, store = memory_world
    event = await world.event()

    class OutageAtLoad(Runner):
        async def run(self, ctx: UnitContext) -> UnitResult:
            result = await super().run(ctx)
            store.unavailable = True  # the ledger goes down while the load finishes
            return result

    instance = world.instance(
        "instance-1", runner=OutageAtLoad(world.objects, world.warehouse, chunk_bytes=65536)
    )
    outcome = await instance.handle(event)
    assert outcome.status is Status.TRANSIENT  # 503: redeliver, never "done" on a guess
    assert await world.rows() == ORDERS_ROWS
    store.unavailable = False
    assert (await world.record(event.object)).state is UnitState.IN_PROGRESS
    world.clock.advance(LEASE + 1)
    again = await world.instance("instance-2").handle(event)
    assert again.status is Status.LOADED
    assert await world.rows() == ORDERS_ROWS


async def test_ledger_unavailable_before_the_claim_is_transient(
    memory_world: tuple[World, MemoryLedgerStore],
) -> None:
    world, store = memory_world
    store.unavailable = True
    outcome = await world.instance("instance-1").handle(await world.event())
    assert outcome.status is Status.TRANSIENT
    assert await world.warehouse.tables() == []  # nothing ran


async def test_duplicate_delivery_answers_the_recorded_result(world: World) -> None:
    event = await world.event()
    instance = world.instance("instance-1")
    assert (await instance.handle(event)).status is Status.LOADED
    world.clock.advance(3600)
    again = await world.instance("instance-2").handle(await world.event(event_id="e2"))
    assert again.status is Status.DUPLICATE
    assert only(again.units).rows_loaded == ORDERS_ROWS
    assert await world.rows() == ORDERS_ROWS


class NoNameQuery(MemoryLedgerStore):
    """A ledger whose query for a name's last completed generation fails (no index yet)."""

    async def last_completed(self, name_key: str) -> LedgerRecord | None:
        raise TransientError("the query needs an index")


async def test_a_failed_same_content_query_releases_the_claim(world: World) -> None:
    event = await world.event()
    store = NoNameQuery()
    outcome = await world.instance("instance-1", ledger_store=store).handle(event)
    assert outcome.status is Status.TRANSIENT
    ref = event.object.ref
    assert ref.generation is not None
    stored = await store.get(UnitKey("orders", ref.bucket, ref.name, ref.generation).digest)
    assert stored is not None
    assert stored.record.lease_expires_at == world.clock.now  # a redelivery may take it at once
    assert await world.warehouse.tables() == []  # nothing ran


async def test_stale_owner_loses_its_completion_to_a_takeover(world: World) -> None:
    """The first instance stalls past its lease; a second one takes the unit over meanwhile."""
    event = await world.event()
    taken: list[object] = []

    class StallingRunner(Runner):
        async def run(self, ctx: UnitContext) -> UnitResult:
            world.clock.advance(LEASE + 1)
            taken.append(await world.instance("instance-2").handle(event))
            return await super().run(ctx)

    slow = world.instance(
        "instance-1", runner=StallingRunner(world.objects, world.warehouse, chunk_bytes=65536)
    )
    outcome = await slow.handle(event)
    assert outcome.status is Status.TRANSIENT  # its completion was refused
    [second] = taken
    assert getattr(second, "status", None) is Status.LOADED
    assert await world.rows() == ORDERS_ROWS
    record = await world.record(event.object)
    assert (record.state, record.owner, record.attempt) == (UnitState.COMPLETED, "instance-2", 2)


async def test_other_content_under_the_same_key_is_refused(world: World) -> None:
    event = await world.event()
    assert (await world.instance("instance-1").handle(event)).status is Status.LOADED
    forged = replace(event, object=replace(event.object, md5_base64="AAAAAAAAAAAAAAAAAAAAAA=="))
    outcome = await world.instance("instance-2").handle(forged)
    assert outcome.status is Status.FAILED  # acknowledged, logged, not loaded again
    assert "different content" in (only(outcome.units).error or "")
    assert await world.rows() == ORDERS_ROWS


async def test_permanent_failure_is_recorded_and_forced_rerun_retries_it(world: World) -> None:
    bad = world.objects.put(
        "landing", "customers/bad.csv", b"customer_id,name,country,signed_up\n,Nobody,XX,nope\n"
    )
    event = await world.event(bad)
    first = await world.instance("instance-1").handle(event)
    assert first.status is Status.FAILED
    record = await world.record(event.object, "customers")
    assert record.state is UnitState.FAILED
    assert record.error
    again = await world.instance("instance-2").handle(event)
    assert again.status is Status.DUPLICATE  # recorded failures are acknowledged, not re-run
    forced = await world.instance("instance-2").handle(event, force=True)
    assert forced.status is Status.FAILED
    rerun = await world.record(event.object, "customers")
    assert (rerun.state, rerun.owner, rerun.attempt) == (UnitState.FAILED, "instance-2", 2)


async def test_forced_rerun_of_a_completed_unit_still_loads_rows_once(world: World) -> None:
    event = await world.event()
    assert (await world.instance("instance-1").handle(event)).status is Status.LOADED
    forced = await world.instance("instance-2").handle(event, force=True)
    assert forced.status is Status.LOADED
    record = await world.record(event.object)
    assert (record.owner, record.attempt) == ("instance-2", 2)
    assert await world.rows() == ORDERS_ROWS  # same unit, same job id: the load is adopted


async def test_claimed_unit_has_a_live_lease_while_it_runs(world: World) -> None:
    event = await world.event()
    seen: list[LedgerRecord] = []

    class Peeking(Runner):
        async def run(self, ctx: UnitContext) -> UnitResult:
            seen.append(await world.record(event.object))
            busy = await world.instance("instance-2").handle(event)
            assert busy.status is Status.BUSY
            return await super().run(ctx)

    instance = world.instance(
        "instance-1", runner=Peeking(world.objects, world.warehouse, chunk_bytes=65536)
    )
    assert (await instance.handle(event)).status is Status.LOADED
    [running] = seen
    assert (running.state, running.owner) == (UnitState.IN_PROGRESS, "instance-1")
    assert running.lease_expires_at == world.clock.now + timedelta(seconds=LEASE)


class StallingStore(DirectoryObjectStore):
    """A store whose read hands out the first chunk, then never yields more data."""

    async def read(self, ref: ObjectRef, chunk_bytes: int) -> AsyncIterator[bytes]:
        async for chunk in super().read(ref, chunk_bytes):
            yield chunk
            await asyncio.Event().wait()


async def test_a_unit_whose_read_stalls_is_cancelled_and_its_lease_released(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    event = await world.event()
    stalling = StallingStore(world.settings.data_dir / "buckets")
    stuck = world.instance("instance-1", objects=stalling, stall_seconds=0.2)
    with caplog.at_level(logging.INFO):
        outcome = await asyncio.wait_for(stuck.handle(event), 30)  # bounded: hangs on old code
    unit = only(outcome.units)
    assert (outcome.status, unit.status, unit.stage) == (
        Status.TRANSIENT,
        Status.TRANSIENT,
        "extract",
    )
    assert (await world.record(event.object)).lease_expires_at <= world.clock.now  # released
    lines = [r.getMessage() for r in caplog.records]
    assert any("no progress for 0.2 s in stage extract" in line for line in lines), lines
    assert any("transient" in line and "in stage extract" in line for line in lines), lines
    again = await world.instance("instance-2").handle(event)  # no need to wait for the lease
    assert again.status is Status.LOADED


async def test_an_unexpected_error_after_the_claim_releases_the_lease(world: World) -> None:
    event = await world.event()

    class Buggy(Runner):
        async def run(self, ctx: UnitContext) -> UnitResult:
            raise ValueError("embedded null byte")

    buggy = world.instance(
        "instance-1", runner=Buggy(world.objects, world.warehouse, chunk_bytes=65536)
    )
    outcome = await buggy.handle(event)
    assert outcome.status is Status.TRANSIENT  # retried: a bug is not a verdict on the file
    record = await world.record(event.object)
    assert (record.state, record.lease_expires_at) == (UnitState.IN_PROGRESS, world.clock.now)
    again = await world.instance("instance-2").handle(event)
    assert again.status is Status.LOADED  # taken at once, not 429 until the lease ran out
    assert await world.rows() == ORDERS_ROWS


async def test_a_false_checksum_does_not_block_the_true_event(world: World) -> None:
    event = await world.event()
    wrong_md5 = replace(event.object, md5_base64="AAAAAAAAAAAAAAAAAAAAAA==", crc32c_base64=None)
    false = replace(event, object=wrong_md5)
    first = await world.instance("instance-1").handle(false)
    assert first.status is Status.FAILED
    assert (await world.record(event.object)).state is UnitState.FAILED
    # The stored object is the judge: the event whose checksum it matches takes the unit over.
    true = await world.instance("instance-2").handle(event)
    assert true.status is Status.LOADED
    record = await world.record(event.object)
    assert (record.state, record.fingerprint, record.attempt) == (
        UnitState.COMPLETED,
        f"md5:{event.object.md5_base64}",
        2,
    )
    # Another false event changes nothing: the unit is done, the rows are there once.
    late = await world.instance("instance-3").handle(false)
    assert late.status is Status.FAILED
    assert "different content" in (only(late.units).error or "")
    assert await world.rows() == ORDERS_ROWS


async def test_a_true_event_for_a_false_failure_is_judged_by_crc32c_too(world: World) -> None:
    event = await world.event()
    thin = replace(event.object, md5_base64=None)
    false = replace(event, object=replace(thin, crc32c_base64="AAAAAA=="))
    assert (await world.instance("instance-1").handle(false)).status is Status.FAILED
    true = await world.instance("instance-2").handle(replace(event, object=thin))
    assert true.status is Status.LOADED
    assert await world.rows() == ORDERS_ROWS


@pytest.mark.parametrize("alias", ["orders/./2026-11-20.csv", "orders//2026-11-20.csv"])
async def test_an_alias_of_a_stored_name_is_another_object(world: World, alias: str) -> None:
    event = await world.event()
    assert (await world.instance("instance-1").handle(event)).status is Status.LOADED
    ref = replace(event.object.ref, name=alias)
    aliased = replace(event, object=replace(event.object, ref=ref, size=0, content_type=None))
    outcome = await world.instance("instance-1").handle(aliased)
    assert outcome.status is Status.FAILED  # no such object: the file is not read again
    assert "does not exist" in (only(outcome.units).error or "")
    assert await world.rows() == ORDERS_ROWS


async def test_a_work_message_with_every_slot_busy_is_answered_busy_at_once(world: World) -> None:
    instance = world.instance("instance-1")
    finalized = await world.event()
    work = UnitRequested(replace(finalized.meta, event_id="w1"), "orders", finalized.object)
    for _ in range(instance.max_units_in_flight):  # every slot taken by units elsewhere
        await instance.slots.acquire()
    busy = await asyncio.wait_for(instance.handle(work), 5)  # bounded: waited on a slot before
    assert (busy.status, busy.units) == (Status.BUSY, ())
    assert await world.ledger_store.get(UnitKey("orders", "landing", ORDERS.name, 1).digest) is None
    for _ in range(instance.max_units_in_flight):
        instance.slots.release()
    loaded = await instance.handle(work)
    assert (loaded.status, only(loaded.units).rows_loaded) == (Status.LOADED, ORDERS_ROWS)


async def test_a_work_message_runs_only_its_own_pipeline(world: World) -> None:
    finalized = await world.event()
    other = UnitRequested(finalized.meta, "customers", finalized.object)
    outcome = await world.instance("instance-1").handle(other)
    assert (outcome.status, outcome.units) == (Status.IGNORED, ())
    assert await world.warehouse.tables() == []
