"""The Write API path on the BigQuery emulator's gRPC Write API (Arrow rows, offsets, finalize,
a commit that refuses a second commit), with the ledger on the Firestore emulator: the same
exactly-once scenarios as on the in-memory writer, and the emulator's own offset answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from service.adapters.gcp import build
from service.adapters.gcp.bigquery import BigQueryWarehouse
from service.adapters.gcp.bigquery_write import BigQueryStreamWriter
from service.adapters.gcp.firestore import FirestoreLedgerStore
from service.adapters.local.directory_store import DirectoryObjectStore
from service.errors import TransientError
from service.models import Column, StreamPhase, TableSpec
from tests import stream_scenarios
from tests.crash_kit import FakeClock
from tests.emulator_fixtures import Emulators
from tests.stream_scenarios import Stage

pytestmark = pytest.mark.emulators


@pytest.fixture
async def parts(
    emulators: Emulators, unique: str, tmp_path: Path
) -> AsyncIterator[tuple[BigQueryWarehouse, BigQueryStreamWriter, FirestoreLedgerStore]]:
    # The backend as a deployment on the emulators builds it: the Write API at its own address.
    settings = emulators.settings(
        data_dir=tmp_path / "data",
        ledger_collection=unique,
        bigquery_write_endpoint=f"127.0.0.1:{emulators.bigquery.grpc_port}",
    )
    store, warehouse, ledger, writer = build(settings)
    assert isinstance(warehouse, BigQueryWarehouse)
    assert isinstance(writer, BigQueryStreamWriter)
    assert isinstance(ledger, FirestoreLedgerStore)
    yield warehouse, writer, ledger
    await writer.close()
    await ledger.close()
    await warehouse.close()
    await store.close()


@pytest.fixture
def stage(
    parts: tuple[BigQueryWarehouse, BigQueryStreamWriter, FirestoreLedgerStore],
    unique: str,
    tmp_path: Path,
) -> Stage:
    warehouse, writer, ledger = parts
    table = f"{unique}.orders"

    async def committed() -> int:
        try:
            return await warehouse.count_rows(table)
        except Exception:
            return 0  # no table yet: nothing committed

    clock = FakeClock(datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
    return Stage(DirectoryObjectStore(tmp_path / "b"), ledger, clock, writer, committed, table)


@pytest.mark.parametrize("scenario", stream_scenarios.SCENARIOS, ids=lambda s: s.__name__)
async def test_exactly_once(stage: Stage, scenario: Callable[[Stage], Awaitable[None]]) -> None:
    await scenario(stage)


async def test_the_emulator_answers_offsets_and_a_second_commit(
    parts: tuple[BigQueryWarehouse, BigQueryStreamWriter, FirestoreLedgerStore], unique: str
) -> None:
    warehouse, writer, _ = parts
    table = TableSpec(f"{unique}.t", (Column("a", "INTEGER"),))
    stream = await writer.create_stream(table)
    batch = pa.record_batch({"a": pa.array([1, 2, 3], pa.int64())})
    assert await writer.append(stream, batch, 0)
    assert not await writer.append(stream, batch, 0)  # ALREADY_EXISTS: applied before
    with pytest.raises(TransientError):
        await writer.append(stream, batch, 9)  # OUT_OF_RANGE: past the end
    assert await writer.finalize(stream) == 3
    assert (await writer.describe(stream)).phase is StreamPhase.PENDING
    assert await writer.commit(table, [stream])
    assert not await writer.commit(table, [stream])  # a stream commits once
    assert (await writer.describe(stream)).phase is StreamPhase.COMMITTED
    assert await warehouse.count_rows(table.name) == 3
