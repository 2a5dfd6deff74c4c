from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.adapters.faults import (
    FaultInjector,
    FaultyObjectStore,
    FaultyStreamWriter,
    FaultyWarehouse,
)
from service.adapters.local.directory_store import DirectoryObjectStore
from service.adapters.local.duckdb_warehouse import DuckDbWarehouse
from service.adapters.memory_streams import MemoryStreamWriter
from service.errors import TransientError
from service.models import Column, ObjectRef, StreamPhase, TableSpec
from service.settings import Settings, replace_settings
from service.wiring import build_backends


async def test_rate_zero_never_fails(tmp_path: Path) -> None:
    store = FaultyObjectStore(DirectoryObjectStore(tmp_path), FaultInjector(0.0))
    for i in range(50):
        await store.write(ObjectRef("b", f"o{i}"), b"x", "text/plain")
    assert len(await store.list("b", "")) == 50


async def test_rate_one_fails_every_call(tmp_path: Path) -> None:
    faults = FaultInjector(1.0, seed=1)
    store = FaultyObjectStore(DirectoryObjectStore(tmp_path), faults)
    for _ in range(20):
        with pytest.raises(TransientError, match="injected"):
            await store.list("b", "")
    assert faults.injected == 20


async def test_a_fault_after_the_load_leaves_the_load_done_and_a_retry_adopts_it(
    tmp_path: Path,
) -> None:
    inner = DuckDbWarehouse(tmp_path / "w.duckdb")
    faults = FaultInjector(0.0)
    warehouse = FaultyWarehouse(inner, faults)
    table = TableSpec("d.t", (Column("id", "INTEGER"),))
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": [1, 2]}), path)
    faults.rate = 0.5
    faults.roll = lambda: 0.1  # type: ignore[method-assign]  # under rate/2: fails before
    with pytest.raises(TransientError, match="before"):
        await warehouse.load_parquet(table, path, "job-1")
    assert await inner.tables() == []
    faults.roll = lambda: 0.4  # type: ignore[method-assign]  # under rate only: fails after
    with pytest.raises(TransientError, match="after"):
        await warehouse.load_parquet(table, path, "job-1")
    assert await inner.count_rows("d.t") == 2  # the load happened; its answer was lost
    faults.rate = 0.0
    result = await warehouse.load_parquet(table, path, "job-1")
    assert result.adopted
    assert await inner.count_rows("d.t") == 2
    await inner.close()


async def test_wiring_wraps_backends_only_when_asked(embedded_settings: Settings) -> None:
    plain = build_backends(embedded_settings)
    assert not isinstance(plain.store, FaultyObjectStore)
    await plain.close()
    faulty = build_backends(replace_settings(embedded_settings, fault_rate=0.1))
    assert isinstance(faulty.store, FaultyObjectStore)
    assert isinstance(faulty.warehouse, FaultyWarehouse)
    assert isinstance(faulty.streams, FaultyStreamWriter)
    await faulty.close()


async def test_a_faulty_commit_lost_after_it_happened_is_adopted_by_the_read_back() -> None:
    inner = MemoryStreamWriter()
    faults = FaultInjector(0.5)
    writer = FaultyStreamWriter(inner, faults)
    table = TableSpec("d.t", ())
    faults.roll = lambda: 0.9  # type: ignore[method-assign]  # no fault
    stream = await writer.create_stream(table)
    assert await writer.append(stream, pa.record_batch({"a": [1, 2]}), 0)
    assert await writer.finalize(stream) == 2
    faults.roll = lambda: 0.4  # type: ignore[method-assign]  # under rate only: fails after
    with pytest.raises(TransientError, match="after commit"):
        await writer.commit(table, [stream])
    assert inner.rows("d.t") == 2  # committed; its answer was lost
    assert (await writer.describe(stream)).phase is StreamPhase.COMMITTED


async def test_the_gs_fast_path_survives_fault_injection(embedded_settings: Settings) -> None:
    from service.adapters.faults import FaultyUriWarehouse, faulty_warehouse
    from service.ports import UriLoader

    class Loader(DuckDbWarehouse):
        async def load_uri(self, *args: object, **kwargs: object) -> object:
            raise AssertionError("not called here")

    inner = Loader(embedded_settings.data_dir / "w.duckdb")
    wrapped = faulty_warehouse(inner, FaultInjector(0.1))
    assert isinstance(wrapped, FaultyUriWarehouse)
    assert isinstance(wrapped, UriLoader)
    plain = faulty_warehouse(
        DuckDbWarehouse(embedded_settings.data_dir / "v.duckdb"), FaultInjector(0.1)
    )
    assert not isinstance(plain, UriLoader)
    await inner.close()
    await plain.close()
