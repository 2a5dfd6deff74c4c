"""The Write API path on the in-memory StreamWriter: the exactly-once scenarios, request sizes,
a rejected file, and a commit that comes too late (the pending stream expired)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from service.adapters.local.directory_store import DirectoryObjectStore
from service.adapters.local.sqlite_ledger import SqliteLedgerStore
from service.adapters.memory_streams import MemoryStreamWriter
from service.adapters.stream_faults import Crash, Script
from service.models import TableSpec, UnitState
from service.pipeline.stream_load import pieces, plain
from service.results import Status
from tests import stream_scenarios
from tests.crash_kit import FakeClock
from tests.pipeline_support import BUCKET, csv_rows
from tests.stream_scenarios import Stage, event

TABLE = "sales.orders"


@pytest.fixture
async def stage(tmp_path: Path) -> AsyncIterator[Stage]:
    writer = MemoryStreamWriter()

    async def committed() -> int:
        return writer.rows(TABLE)

    ledger = SqliteLedgerStore(tmp_path / "ledger.sqlite3")
    clock = FakeClock(datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
    yield Stage(DirectoryObjectStore(tmp_path / "b"), ledger, clock, writer, committed, TABLE)
    await ledger.close()


@pytest.mark.parametrize("scenario", stream_scenarios.SCENARIOS, ids=lambda s: s.__name__)
async def test_exactly_once(stage: Stage, scenario: Callable[[Stage], Awaitable[None]]) -> None:
    await scenario(stage)


async def test_a_commit_too_late_fails_the_unit_instead_of_loading_twice(stage: Stage) -> None:
    info = await stage.put()
    dying, _ = stage.instance(Script(crash_before_commit=True))
    with pytest.raises(Crash):
        await dying.handle(event(info))
    assert isinstance(stage.writer, MemoryStreamWriter)
    (stream,) = stage.writer._streams
    stage.writer.expire(stream)  # 24 hours pass before anyone comes back
    stage.expire_lease()
    taker, _ = stage.instance()
    outcome = await taker.handle(event(info, "e2"))
    assert outcome.status is Status.FAILED
    assert "commit was never confirmed" in (outcome.units[0].error or "")
    assert await stage.committed_rows() == 0
    assert (await stage.record_of(info))[0] is UnitState.FAILED


async def test_a_rejected_file_is_never_committed(stage: Stage) -> None:
    bad = csv_rows(*[f"x{i},n,1.5,2026-11-20" for i in range(10)])
    ref = stage.store.put(BUCKET, "orders/bad.csv", bad, "text/csv", None)
    ingestor, writer = stage.instance()
    outcome = await ingestor.handle(event(await stage.store.stat(ref)))
    assert outcome.status is Status.FAILED
    assert "commit" not in writer.calls
    assert await stage.committed_rows() == 0


def test_every_request_stays_under_the_limit_and_keeps_every_row() -> None:
    batch = pa.record_batch({"a": pa.array(range(10_000)), "b": pa.array(["x" * 50] * 10_000)})
    parts = pieces(batch, 64 * 1024)
    assert all(p.nbytes < 64 * 1024 for p in parts)
    assert pa.Table.from_batches(parts).equals(pa.Table.from_batches([batch]))


def test_dictionary_columns_are_decoded_for_the_api() -> None:
    values = pa.array(["u", "u", "v"]).dictionary_encode()
    batch = plain(pa.record_batch({"s": values}))
    assert batch.schema.field("s").type == pa.string()
    assert batch.column(0).to_pylist() == ["u", "u", "v"]


async def test_rows_land_once_per_offset() -> None:
    writer = MemoryStreamWriter()
    stream = await writer.create_stream(TableSpec("d.t", ()))
    batch = pa.record_batch({"a": [1, 2]})
    assert await writer.append(stream, batch, 0)
    assert not await writer.append(stream, batch, 0)  # a resend: already there
    assert await writer.finalize(stream) == 2


async def test_a_backend_without_the_write_api_refuses_a_stream_pipeline(stage: Stage) -> None:
    info = await stage.put()
    ingestor, _ = stage.instance()
    ingestor.runner.streams = None
    outcome = await ingestor.handle(event(info))
    assert outcome.status is Status.FAILED
    assert "no Write API" in (outcome.units[0].error or "")
