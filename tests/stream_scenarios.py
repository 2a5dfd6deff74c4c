"""Exactly-once scenarios of the Write API path, written once and run on every StreamWriter:
the in-memory one (tests/test_pipeline_stream_load.py), DuckDB (test_adapters_local_duckdb_arrow)
and the BigQuery emulator's gRPC Write API (test_pipeline_stream_emulators.py).

A ``Stage`` is one place for a run: an object store with the file, a ledger, a fake clock, and
a StreamWriter (wrapped in ``ScriptedStreamWriter`` so a scenario can plan faults and crashes)
whose table's committed row count ``committed_rows`` reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import cast

import pytest

from service.adapters.local.directory_store import DirectoryObjectStore
from service.adapters.stream_faults import Crash, Script, ScriptedStreamWriter
from service.content import fingerprint
from service.errors import LeaseLostError
from service.ingest import Ingestor
from service.ledger import Claimed, LeaseHolder, Ledger
from service.models import (
    EventMeta,
    ObjectFinalized,
    ObjectInfo,
    UnitKey,
    UnitResult,
    UnitState,
)
from service.pipeline import stream_load
from service.pipeline.definition import Pipeline, PipelineSet
from service.pipeline.runner import Runner
from service.ports import IdempotencyStore, StreamWriter, Warehouse
from service.results import Status
from service.stream_journal import LedgerJournal
from tests.crash_kit import DiesBeforeCompletion, FakeClock, Killed
from tests.pipeline_support import BUCKET, csv_rows, pipeline

LEASE = 60.0
ROWS = 100
DATA = csv_rows(*[f"{i},n{i},{i}.5,2026-11-20" for i in range(1, ROWS + 1)])


def stream_pipeline(table: str) -> Pipeline:
    p = pipeline(load="stream")
    return replace(p, table=replace(p.table, name=table))


@dataclass
class Stage:
    store: DirectoryObjectStore
    ledger_store: IdempotencyStore
    clock: FakeClock
    writer: StreamWriter
    committed_rows: Callable[[], Awaitable[int]]
    table: str

    def instance(
        self, script: Script | None = None, *, ledger_store: IdempotencyStore | None = None
    ) -> tuple[Ingestor, ScriptedStreamWriter]:
        scripted = ScriptedStreamWriter(self.writer, script or Script())
        warehouse = cast(Warehouse, _NoWarehouse())
        runner = Runner(self.store, warehouse, chunk_bytes=64 * 1024, streams=scripted)
        ledger = Ledger(
            ledger_store or self.ledger_store, owner="w", lease_seconds=LEASE, clock=self.clock
        )
        p = stream_pipeline(self.table)
        ingestor = Ingestor(
            PipelineSet((p,)),
            self.store,
            ledger,
            runner,
            renew_every_seconds=LEASE / 3,
            stall_seconds=LEASE / 2,
            max_units_in_flight=4,
        )
        return ingestor, scripted

    async def put(self, name: str = "orders/a.csv") -> ObjectInfo:
        ref = self.store.put(BUCKET, name, DATA, "text/csv", None)
        return await self.store.stat(ref)

    async def record_of(self, info: ObjectInfo) -> tuple[UnitState, str | None, int]:
        p = stream_pipeline(self.table)
        assert info.ref.generation is not None
        key = UnitKey(p.name, info.ref.bucket, info.ref.name, info.ref.generation)
        stored = await self.ledger_store.get(key.digest)
        assert stored is not None
        r = stored.record
        return r.state, r.write_phase, r.attempt

    def expire_lease(self) -> None:
        self.clock.now += timedelta(seconds=LEASE + 1)


class _NoWarehouse:
    """The stream path never touches the load-job warehouse: any call is a test failure."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the stream path called Warehouse.{name}")


def event(info: ObjectInfo, event_id: str = "e1") -> ObjectFinalized:
    meta = EventMeta(event_id, "google.cloud.storage.object.v1.finalized", "t")
    return ObjectFinalized(meta, info)


async def loads_once(stage: Stage) -> None:
    info = await stage.put()
    ingestor, writer = stage.instance()
    first = await ingestor.handle(event(info))
    again = await ingestor.handle(event(info, "e2"))
    assert (first.status, again.status) == (Status.LOADED, Status.DUPLICATE)
    assert await stage.committed_rows() == ROWS
    assert (await stage.record_of(info))[0] is UnitState.COMPLETED
    assert writer.calls == {"create": 1, "append": 1, "commit": 1}


async def redelivery_during_writing(stage: Stage) -> None:
    """The first owner dies mid-append; the takeover writes a new stream, and the old owner's
    late compare-and-set to "committing" fails: it can never commit."""
    info = await stage.put()
    first, _ = stage.instance()
    p = stream_pipeline(stage.table)
    assert info.ref.generation is not None
    key = UnitKey(p.name, info.ref.bucket, info.ref.name, info.ref.generation)
    claim = await first.ledger.claim(key, fingerprint(info))
    assert isinstance(claim, Claimed)
    old = LeaseHolder(claim.lease)
    old_journal = LedgerJournal(first.ledger, old)
    old_stream = await stage.writer.create_stream(p.output_table)
    await old_journal.writing((old_stream,))

    stage.expire_lease()
    second, writer = stage.instance()
    outcome = await second.handle(event(info, "e2"))
    assert outcome.status is Status.LOADED
    assert writer.calls["create"] == 1  # a new stream of its own
    with pytest.raises(LeaseLostError):
        await old_journal.committing((old_stream,), UnitResult(rows_loaded=ROWS))
    assert await stage.committed_rows() == ROWS


async def crash_after_finalize_before_commit(stage: Stage) -> None:
    info = await stage.put()
    dying, _ = stage.instance(Script(crash_before_commit=True))
    with pytest.raises(Crash):
        await dying.handle(event(info))
    assert (await stage.record_of(info))[:2] == (UnitState.IN_PROGRESS, "committing")
    assert await stage.committed_rows() == 0

    stage.expire_lease()
    taker, writer = stage.instance()
    outcome = await taker.handle(event(info, "e2"))
    assert outcome.status is Status.LOADED and outcome.units[0].rows_loaded == ROWS
    assert writer.calls == {"commit": 1}  # it only finished that commit: no new stream
    assert await stage.committed_rows() == ROWS
    assert await stage.record_of(info) == (UnitState.COMPLETED, "committing", 2)


async def crash_after_commit_before_completion(stage: Stage) -> None:
    info = await stage.put()
    dying, _ = stage.instance(ledger_store=DiesBeforeCompletion(stage.ledger_store))
    with pytest.raises(Killed):
        await dying.handle(event(info))
    assert await stage.committed_rows() == ROWS

    stage.expire_lease()
    taker, writer = stage.instance()
    outcome = await taker.handle(event(info, "e2"))
    assert outcome.status is Status.LOADED and outcome.units[0].rows_loaded == ROWS
    assert writer.calls == {"commit": 1}  # refused (committed already), read back, adopted
    assert await stage.committed_rows() == ROWS
    assert (await stage.record_of(info))[0] is UnitState.COMPLETED


async def duplicate_delivery_during_commit(stage: Stage) -> None:
    info = await stage.put()
    gate, entered = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        entered.set()
        await gate.wait()

    ingestor, _ = stage.instance(Script(before_commit=hold))
    first = asyncio.create_task(ingestor.handle(event(info)))
    await asyncio.wait_for(entered.wait(), 30)
    during = await ingestor.handle(event(info, "e2"))
    gate.set()
    done = await first
    assert (done.status, during.status) == (Status.LOADED, Status.BUSY)
    assert await stage.committed_rows() == ROWS


async def faults_the_emulator_cannot_make(stage: Stage) -> None:
    """An append applied whose answer is lost, a reset before one applied, a commit whose
    answer is lost: each resent or read back, the rows land once."""
    info = await stage.put()
    script = Script(append_answer_lost={1}, append_reset={2}, commit_answer_lost={1})
    ingestor, writer = stage.instance(script)
    limit, stream_load.MAX_REQUEST_BYTES = stream_load.MAX_REQUEST_BYTES, 1024  # a few appends
    try:
        outcome = await ingestor.handle(event(info))
    finally:
        stream_load.MAX_REQUEST_BYTES = limit
    assert outcome.status is Status.LOADED, outcome
    assert writer.fired == ["append answer lost", "append reset", "commit answer lost"]
    assert writer.calls["append"] > 3  # several requests, two of them sent twice
    assert await stage.committed_rows() == ROWS


SCENARIOS = (
    loads_once,
    redelivery_during_writing,
    crash_after_finalize_before_commit,
    crash_after_commit_before_completion,
    duplicate_delivery_during_commit,
    faults_the_emulator_cannot_make,
)
