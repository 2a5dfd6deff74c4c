"""The pipeline behind the use case, on the embedded backends: exactly once, and sweeps.

Every delivery shape ends in the table once: the same event three times at once, three times
in a row, and a process that dies between the load and the ledger's completion followed by a
redelivery. A fake clock makes lease expiry a step of the test rather than a wait.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.adapters.local.sqlite_ledger import SqliteLedgerStore
from service.answers import of_outcome
from service.ingest import Ingestor
from service.ledger import Ledger
from service.models import (
    EventMeta,
    LedgerRecord,
    ObjectFinalized,
    ObjectInfo,
    SweepRequested,
    UnitResult,
    UnitState,
)
from service.pipeline.context import UnitContext
from service.pipeline.definition import BadRowPolicy, CsvOptions, Pipeline, PipelineSet
from service.pipeline.runner import Runner
from service.ports import IdempotencyStore
from service.results import Status
from tests.crash_kit import DiesBeforeCompletion, FakeClock, Killed
from tests.pipeline_support import Rig, csv_rows, ledger_record, pipeline

LEASE = 60.0
ROWS = csv_rows(*[f"{i},n{i},{i}.5,2026-11-20" for i in range(1, 101)])


@dataclass
class World:
    rig: Rig
    ledger_store: SqliteLedgerStore
    clock: FakeClock

    def instance(
        self,
        p: Pipeline,
        *,
        store: IdempotencyStore | None = None,
        runner: Runner | None = None,
        slots: int = 4,
    ) -> Ingestor:
        ledger = Ledger(
            store or self.ledger_store, owner="test", lease_seconds=LEASE, clock=self.clock
        )
        return Ingestor(
            PipelineSet((p,)),
            self.rig.store,
            ledger,
            runner or self.rig.runner,
            renew_every_seconds=LEASE / 3,
            stall_seconds=LEASE / 2,
            max_units_in_flight=slots,
        )

    async def record(self, p: Pipeline, info: ObjectInfo) -> LedgerRecord:
        return await ledger_record(self.ledger_store, p, info)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    rig = Rig(tmp_path)
    store = SqliteLedgerStore(tmp_path / "ledger.sqlite3")
    yield World(rig, store, FakeClock(datetime(2026, 11, 21, 12, 0, tzinfo=UTC)))
    await store.close()
    await rig.close()


def finalized(info: ObjectInfo, event_id: str = "e1") -> ObjectFinalized:
    meta = EventMeta(event_id, "google.cloud.storage.object.v1.finalized", "test")
    return ObjectFinalized(meta, info)


async def test_the_same_event_three_times_at_once_loads_once(world: World) -> None:
    p = pipeline()
    info = await world.rig.put("orders/a.csv", ROWS)
    ingestor = world.instance(p)
    outcomes = await asyncio.gather(*(ingestor.handle(finalized(info)) for _ in range(3)))
    statuses = sorted(o.status.value for o in outcomes)
    assert statuses.count("loaded") == 1
    assert set(statuses) <= {"loaded", "busy", "duplicate"}
    assert await world.rig.warehouse.count_rows("sales.orders") == 100
    again = await ingestor.handle(finalized(info))
    assert again.status is Status.DUPLICATE
    assert await world.rig.warehouse.count_rows("sales.orders") == 100


async def test_the_same_event_three_times_in_a_row_loads_once(world: World) -> None:
    p = pipeline()
    info = await world.rig.put("orders/a.csv", ROWS)
    ingestor = world.instance(p)
    outcomes = [await ingestor.handle(finalized(info, f"e{n}")) for n in range(3)]
    assert [o.status for o in outcomes] == [Status.LOADED, Status.DUPLICATE, Status.DUPLICATE]
    # A duplicate loaded nothing now: its rows are reported apart, as loaded by an earlier run.
    assert [o.summary()["rows_loaded"] for o in outcomes] == [100, 0, 0]
    assert [o.summary()["rows_already_loaded"] for o in outcomes] == [0, 100, 100]
    assert await world.rig.warehouse.count_rows("sales.orders") == 100


async def crash_after_the_load(world: World, p: Pipeline) -> ObjectInfo:
    """A process loads a new file and dies before the ledger hears; the lease runs out."""
    info = await world.rig.put("orders/a.csv", ROWS)
    dying = world.instance(p, store=DiesBeforeCompletion(world.ledger_store))
    with pytest.raises(Killed):
        await dying.handle(finalized(info, "first"))
    return info


async def test_a_crash_between_load_and_completion_then_a_redelivery_loads_once(
    world: World,
) -> None:
    p = pipeline(lineage=True)
    info = await crash_after_the_load(world, p)
    assert (
        await world.rig.warehouse.count_rows("sales.orders") == 100
    )  # the load happened; the ledger never heard
    assert (await world.record(p, info)).state is UnitState.IN_PROGRESS

    world.clock.now += timedelta(seconds=LEASE + 1)  # the dead owner's lease runs out
    restarted = Rig(world.rig.root)  # a new process: its own runner, same backends
    outcome = await world.instance(p, runner=restarted.runner).handle(finalized(info, "second"))
    await restarted.close()
    assert outcome.status is Status.LOADED
    assert await world.rig.warehouse.count_rows("sales.orders") == 100
    # The rows are the first attempt's (its event id), adopted by the second.
    events = await world.rig.rows(columns="DISTINCT _event_id")
    assert events == [("first",)]
    record = await world.record(p, info)
    assert record.state is UnitState.COMPLETED and record.attempt == 2
    assert record.result is not None
    assert (record.result.rows_read, record.result.rows_loaded) == (100, 100)


async def test_a_takeover_after_a_settings_change_adopts_the_dead_attempts_load(
    world: World,
) -> None:
    # Issue: the job id follows the pipeline's version; a process that died after submitting
    # its load, then a deploy that changed a row-shaping setting, and the takeover loaded again.
    p = pipeline(lineage=True)
    info = await crash_after_the_load(world, p)
    submitted = (await world.record(p, info)).job_id
    assert submitted is not None

    world.clock.now += timedelta(seconds=LEASE + 1)
    changed = replace(p, csv=CsvOptions(null_values=("", "NULL")))
    assert changed.version != p.version
    outcome = await world.instance(changed).handle(finalized(info, "second"))
    assert outcome.status is Status.LOADED
    assert await world.rig.warehouse.count_rows("sales.orders") == 100
    record = await world.record(p, info)
    assert (record.state, record.attempt, record.job_id) == (UnitState.COMPLETED, 2, submitted)
    assert record.result is not None and record.result.job_id == submitted


async def test_the_same_bytes_uploaded_again_are_a_duplicate_of_the_loaded_generation(
    world: World,
) -> None:
    # Issue: every write is a new generation, so a file uploaded again unchanged loaded again.
    p = pipeline()
    ingestor = world.instance(p)
    first = await world.rig.put("orders/a.csv", ROWS)
    assert (await ingestor.handle(finalized(first))).status is Status.LOADED
    again = await world.rig.put("orders/a.csv", ROWS)
    assert again.ref.generation != first.ref.generation
    reason = f"same content as generation {first.ref.generation}"
    for event_id in ("e2", "e2-redelivered"):
        outcome = await ingestor.handle(finalized(again, event_id))
        assert (outcome.status, outcome.reason) == (Status.DUPLICATE, reason)
        assert outcome.summary()["rows_loaded"] == 0
    assert await world.rig.warehouse.count_rows("sales.orders") == 100
    record = await world.record(p, again)
    assert record.state is UnitState.COMPLETED
    assert record.result is not None and record.result.same_content_as == first.ref.generation

    changed = await world.rig.put("orders/a.csv", ROWS + b"101,n101,1.5,2026-11-20\n")
    assert (await ingestor.handle(finalized(changed))).status is Status.LOADED
    assert await world.rig.warehouse.count_rows("sales.orders") == 201


async def test_a_pipeline_may_load_every_generation_of_the_same_bytes(world: World) -> None:
    p = pipeline(skip_same_content=False)
    ingestor = world.instance(p)
    for _ in range(2):
        info = await world.rig.put("orders/a.csv", ROWS)
        assert (await ingestor.handle(finalized(info))).status is Status.LOADED
    assert await world.rig.warehouse.count_rows("sales.orders") == 200


async def test_a_forced_run_of_a_repeated_generation_loads_it(world: World) -> None:
    p = pipeline()
    ingestor = world.instance(p)
    await ingestor.handle(finalized(await world.rig.put("orders/a.csv", ROWS)))
    again = await world.rig.put("orders/a.csv", ROWS)
    assert (await ingestor.handle(finalized(again), force=True)).status is Status.LOADED
    assert await world.rig.warehouse.count_rows("sales.orders") == 200


async def test_a_rejected_file_is_recorded_with_its_counts(world: World) -> None:
    p = pipeline()
    info = await world.rig.put(
        "orders/bad.csv", csv_rows("1,a,1,2026-11-20", "x,b,1,2026-11-20", "y,c,1,2026-11-20")
    )
    outcome = await world.instance(p).handle(finalized(info))
    assert outcome.status is Status.FAILED
    record = await world.record(p, info)
    assert record.state is UnitState.FAILED
    assert record.result == UnitResult(
        rows_read=3,
        rows_loaded=0,
        rows_quarantined=2,
        table="sales.orders",
        quarantine_uri=record.result.quarantine_uri if record.result else None,
        durations=record.result.durations if record.result else {},
        rows_rejected=1,
        seconds=record.result.seconds if record.result else None,
        bad_reasons={"id: … is not a valid INTEGER": 2},
    )
    assert record.error == (
        "validate: 2 of 3 rows bad, threshold 50%; most frequent: id: … is not a valid INTEGER (2)"
    )
    # Over HTTP: the stage and the category, in fixed phrases and counts (no value quoted).
    answer = of_outcome(outcome)
    assert answer.body["reason"] == "validate: 2 of 3 rows bad, threshold 50%"
    assert (answer.body["rows_quarantined"], answer.body["rows_rejected"]) == (2, 1)


def dated() -> Pipeline:
    return pipeline(prefix="in/{date}/", glob="*.csv")


def sweep(date: str | None = None, event_id: str = "s1") -> SweepRequested:
    meta = EventMeta(event_id, "google.cloud.pubsub.topic.v1.messagePublished", "scheduler")
    return SweepRequested(meta, "orders", date)


async def test_a_sweep_runs_every_object_of_its_date_not_yet_completed(world: World) -> None:
    for day in ("2026-11-20", "2026-11-21"):
        for n in range(2):
            await world.rig.put(f"in/{day}/{n}.csv", ROWS.replace(b"2026-11-20", day.encode()))
    await world.rig.put("in/2026-11-20/notes.txt", b"not a csv")
    ingestor = world.instance(dated())
    first = (await ingestor.handle(sweep("2026-11-20"))).summary()
    assert first["sweep"] == {"objects": 2, "loaded": 2, "skipped": 0, "failed": 0, "retry": 0}
    assert await world.rig.warehouse.count_rows("sales.orders") == 200
    await world.rig.put("in/2026-11-20/late.csv", csv_rows("x,bad,1,2026-11-20"))
    second = (await ingestor.handle(sweep("2026-11-20", "s2"))).summary()
    assert second["sweep"] == {"objects": 3, "loaded": 0, "skipped": 2, "failed": 1, "retry": 0}
    everything = (await ingestor.handle(sweep(None, "s3"))).summary()
    # The late file failed in the last sweep: it stays failed until a forced replay.
    assert everything["sweep"] == {"objects": 5, "loaded": 2, "skipped": 2, "failed": 1, "retry": 0}
    assert await world.rig.warehouse.count_rows("sales.orders") == 400


async def test_a_sweep_runs_its_units_with_bounded_concurrency(world: World) -> None:
    running = 0
    most = 0

    class Counting(Runner):
        async def run(self, ctx: UnitContext) -> UnitResult:
            nonlocal running, most
            running += 1
            most = max(most, running)
            try:
                await asyncio.sleep(0.01)  # give the others every chance to start meanwhile
                return await super().run(ctx)
            finally:
                running -= 1

    for n in range(8):
        await world.rig.put(f"in/2026-11-20/{n}.csv", ROWS)
    runner = Counting(world.rig.store, world.rig.warehouse, chunk_bytes=65536)
    outcome = await world.instance(dated(), runner=runner, slots=2).handle(sweep("2026-11-20"))
    assert outcome.summary()["sweep"]["loaded"] == 8
    assert most == 2


async def test_an_undated_sweep_after_the_ledger_forgot_loads_nothing_twice(
    world: World, tmp_path: Path
) -> None:
    # Issue: a sweep listed the whole prefix; once finished records expired (as Firestore's TTL
    # deletes them) and an unrelated setting changed the job id, every old file loaded again.
    p = pipeline(prefix="orders/")
    for n in range(2):
        await world.rig.put(f"orders/{n}.csv", ROWS)
    first = (await world.instance(p).handle(sweep(None))).summary()
    assert first["sweep"]["loaded"] == 2
    month_ago = (datetime.now(UTC) - timedelta(days=40)).timestamp()
    for path in (tmp_path / "buckets").rglob("*"):
        if path.is_file():
            os.utime(path, (month_ago, month_ago))
    forgetful = SqliteLedgerStore(tmp_path / "fresh-ledger.sqlite3")
    try:
        looser = pipeline(prefix="orders/", bad_rows=BadRowPolicy(max_ratio=0.9))
        second = (await world.instance(looser, store=forgetful).handle(sweep(None, "s2"))).summary()
    finally:
        await forgetful.close()
    assert second["sweep"]["objects"] == 0
    assert await world.rig.warehouse.count_rows("sales.orders") == 200
