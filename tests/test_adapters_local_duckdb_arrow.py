"""The embedded warehouse's Write API (a DuckDB transaction per stream): the exactly-once
scenarios, a rejected file that leaves nothing, and a process lost between "committing" and
the commit, whose unit is written anew."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from service.adapters.local.directory_store import DirectoryObjectStore
from service.adapters.local.duckdb_arrow import DuckDbArrowWriter
from service.adapters.local.duckdb_warehouse import DuckDbWarehouse
from service.adapters.local.sqlite_ledger import SqliteLedgerStore
from service.adapters.stream_faults import Crash, Script
from service.models import Column, StreamPhase, TableSpec, UnitState
from service.results import Status
from tests import stream_scenarios
from tests.crash_kit import FakeClock
from tests.pipeline_support import BUCKET, csv_rows
from tests.stream_scenarios import ROWS, Stage, event

TABLE = "sales.orders"


@pytest.fixture
async def warehouse(tmp_path: Path) -> AsyncIterator[DuckDbWarehouse]:
    found = DuckDbWarehouse(tmp_path / "w.duckdb")
    yield found
    await found.close()


@pytest.fixture
async def stage(tmp_path: Path, warehouse: DuckDbWarehouse) -> AsyncIterator[Stage]:
    writer = DuckDbArrowWriter(warehouse)

    async def committed() -> int:
        names = dict(await warehouse.tables())
        return names.get(TABLE, 0)

    ledger = SqliteLedgerStore(tmp_path / "ledger.sqlite3")
    clock = FakeClock(datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
    yield Stage(DirectoryObjectStore(tmp_path / "b"), ledger, clock, writer, committed, TABLE)
    await writer.close()
    await ledger.close()


@pytest.mark.parametrize("scenario", stream_scenarios.SCENARIOS, ids=lambda s: s.__name__)
async def test_exactly_once(stage: Stage, scenario: Callable[[Stage], Awaitable[None]]) -> None:
    await scenario(stage)


async def test_a_rejected_file_leaves_nothing(stage: Stage) -> None:
    rows = [f"{i},n,1.5,2026-11-20" for i in range(1, 40)] + ["x,n,1.5,2026-11-20"] * 60
    ref = stage.store.put(BUCKET, "orders/bad.csv", csv_rows(*rows), "text/csv", None)
    ingestor, _ = stage.instance()
    outcome = await ingestor.handle(event(await stage.store.stat(ref)))
    assert outcome.status is Status.FAILED
    assert await stage.committed_rows() == 0  # 39 good rows were inserted, then rolled back


async def test_a_process_lost_before_the_commit_is_written_anew(
    stage: Stage, warehouse: DuckDbWarehouse
) -> None:
    info = await stage.put()
    dying, _ = stage.instance(Script(crash_before_commit=True))
    with pytest.raises(Crash):
        await dying.handle(event(info))
    assert isinstance(stage.writer, DuckDbArrowWriter)
    (stream,) = stage.writer._open
    await stage.writer.close()  # the process is gone: its transaction rolled back
    stage.writer = DuckDbArrowWriter(warehouse)  # the restarted process
    assert (await stage.writer.describe(stream)).phase is StreamPhase.GONE

    stage.expire_lease()
    taker, _ = stage.instance()
    first = await taker.handle(event(info, "e2"))
    assert first.status is Status.TRANSIENT  # the streams are forgotten; the retry writes anew
    again = await taker.handle(event(info, "e3"))
    assert again.status is Status.LOADED
    assert await stage.committed_rows() == ROWS
    assert (await stage.record_of(info))[0] is UnitState.COMPLETED


async def test_appended_batches_are_not_held_until_the_commit(warehouse: DuckDbWarehouse) -> None:
    """A stream's transaction spans the whole file: were DuckDB to keep each appended batch
    (as register() inside a transaction does), a unit's memory would grow with its file."""
    writer = DuckDbArrowWriter(warehouse)
    table = TableSpec(TABLE, (Column("id", "INTEGER"), Column("note", "STRING")))
    stream = await writer.create_stream(table)
    rows, batches = 50_000, 20
    before = pa.total_allocated_bytes()
    for i in range(batches):
        batch = pa.record_batch(
            {
                "id": pa.array(range(i * rows, (i + 1) * rows), pa.int64()),
                "note": pa.array([f"note {n:040d}" for n in range(rows)], pa.string()),
            }
        )
        assert await writer.append(stream, batch, i * rows)
        del batch
    held = pa.total_allocated_bytes() - before
    one_batch = rows * (8 + 4 + 45)
    assert held < 2 * one_batch  # held them all: about batches * one_batch (57 MB)
    assert await writer.finalize(stream) == rows * batches
    assert await writer.commit(table, (stream,))
    await writer.close()
    assert dict(await warehouse.tables())[TABLE] == rows * batches
