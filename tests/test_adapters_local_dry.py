"""service/adapters/local/dry.py: one local file as a store, a warehouse that loads nothing."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.adapters.local.dry import DryWarehouse, OneFileStore
from service.errors import NotFoundError
from service.models import ObjectRef, TableSpec

REF = ObjectRef("landing", "orders/a.csv", 1)


async def test_the_store_serves_its_one_file_and_keeps_writes_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"x" * 10)
    store = OneFileStore(path, REF)
    assert (await store.stat(ObjectRef("landing", "orders/a.csv"))).size == 10
    assert [c async for c in store.read(REF, 4)] == [b"xxxx", b"xxxx", b"xx"]
    with pytest.raises(NotFoundError):
        await store.stat(ObjectRef("landing", "other.csv"))
    target = ObjectRef("landing", "_quarantine/q.jsonl")
    assert await store.write(target, b"{}", "application/x-ndjson") == target
    assert store.written == {target: b"{}"}


async def test_the_warehouse_counts_and_keeps_the_first_rows(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": list(range(10)), "name": list("abcdefghij")}), path)
    warehouse = DryWarehouse(keep_rows=3)
    loaded = await warehouse.load_parquet(TableSpec("s.t", ()), path, "job")
    assert (loaded.job_id, loaded.rows_loaded) == ("job", 10)
    first = await warehouse.peek("s.t", 3)
    assert first.columns == ("id", "name") and first.rows == ((0, "a"), (1, "b"), (2, "c"))
    assert await warehouse.tables() == [] and await warehouse.count_rows("s.t") == 0
