"""The GCP adapters against the emulators, through Google's real client libraries."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.adapters.gcp import gcs
from service.adapters.gcp.bigquery import BigQueryWarehouse
from service.adapters.gcp.firestore import FirestoreLedgerStore
from service.adapters.gcp.gcs import GcsObjectStore
from service.adapters.gcp.sweep_cursors import FirestoreSweepCursors
from service.errors import NotFoundError, PermanentError
from service.ledger import Claimed, Ledger
from service.models import Column, ObjectRef, RowFilter, TableSpec, UnitKey, UnitResult, UnitState
from service.ports import SweepCursor
from service.settings import replace_settings
from tests.emulator_fixtures import Emulators
from tests.listing_kit import all_pages

pytestmark = pytest.mark.emulators


async def test_gcs_write_stat_and_stream(emulators: Emulators, unique: str) -> None:
    store = GcsObjectStore.from_settings(emulators.settings())
    store.client.create_bucket(unique)
    data = b"a,b\n" + b"1,2\n" * 50_000
    written = await store.write(ObjectRef(unique, "dir/file name é.csv"), data, "text/csv")
    assert written.generation is not None
    info = await store.stat(written)
    assert info.size == len(data)
    assert info.md5_base64 == base64.b64encode(hashlib.md5(data).digest()).decode()
    chunks = [c async for c in store.read(written, 64 * 1024)]
    assert len(chunks) > 1
    assert b"".join(chunks) == data
    listed = await store.list(unique, "dir/")
    assert [o.ref.name for o in listed] == ["dir/file name é.csv"]
    await store.close()


async def test_gcs_reads_an_object_in_few_ranged_requests(
    emulators: Emulators, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of 64 KiB, ranges of 1 MiB: a 3.5 MiB object takes 4 ranged requests and the one
    that finds its end, not 57."""
    monkeypatch.setattr(gcs, "RANGE_BYTES", 1024 * 1024)
    store = GcsObjectStore.from_settings(emulators.settings())
    store.client.create_bucket(unique)
    data = bytes(range(256)) * (14 * 1024)  # 3.5 MiB
    written = await store.write(ObjectRef(unique, "big.bin"), data, "application/octet-stream")
    media: list[str] = []
    session = store.client._http
    request = session.request

    def counted(method: str, url: str, *args: object, **kwargs: object) -> object:
        if "alt=media" in url:
            media.append(url)
        return request(method, url, *args, **kwargs)

    monkeypatch.setattr(session, "request", counted)
    chunks = [c async for c in store.read(written, 64 * 1024)]
    assert b"".join(chunks) == data
    assert {len(c) for c in chunks[:-1]} == {64 * 1024}
    assert len(media) == 5
    await store.close()


async def test_gcs_lists_page_by_page_with_the_api_page_token(
    emulators: Emulators, unique: str
) -> None:
    store = GcsObjectStore.from_settings(emulators.settings())
    store.client.create_bucket(unique)
    names = [f"in/{i:02d}.csv" for i in range(7)]
    for name in [*names, "other/x.csv"]:
        await store.write(ObjectRef(unique, name), b"a\n1\n", "text/csv")
    pages = await all_pages(store, unique, "in/", 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [n for p in pages for n in p] == names
    await store.close()


async def test_gcs_missing_generation_is_not_found(emulators: Emulators, unique: str) -> None:
    store = GcsObjectStore.from_settings(emulators.settings())
    store.client.create_bucket(unique)
    written = await store.write(ObjectRef(unique, "x.csv"), b"a\n1\n", "text/csv")
    assert written.generation is not None
    with pytest.raises(NotFoundError):
        await store.stat(ObjectRef(unique, "x.csv", written.generation + 1))
    await store.close()


async def test_firestore_ledger_document_round_trip(emulators: Emulators, unique: str) -> None:
    store = FirestoreLedgerStore.from_settings(emulators.settings(ledger_collection=unique))
    ledger = Ledger(store, owner="worker-1", lease_seconds=60)
    unit = UnitKey("orders", "landing", "orders/a.csv", 7)
    claim = await ledger.claim(unit, "md5:abc", event_id="e1")
    assert isinstance(claim, Claimed)
    stored = await store.get(unit.digest)
    assert stored is not None
    assert stored.record.state is UnitState.IN_PROGRESS
    assert stored.record.owner == "worker-1"
    await ledger.complete(claim.lease, UnitResult(rows_read=3, rows_loaded=3, job_id="j1"))
    done = await store.get(unit.digest)
    assert done is not None
    assert done.record.state is UnitState.COMPLETED
    assert done.record.result is not None
    assert done.record.result.rows_loaded == 3
    assert await store.create(stored.record) is None  # put-if-absent refuses a second create
    await store.close()


async def test_bigquery_load_is_idempotent_by_job_id(
    emulators: Emulators, unique: str, tmp_path: Path
) -> None:
    warehouse = BigQueryWarehouse.from_settings(emulators.settings())
    table = TableSpec(
        f"{unique}.events",
        (Column("id", "INTEGER", "REQUIRED"), Column("name", "STRING")),
    )
    path = tmp_path / "rows.parquet"
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("name", pa.string())])
    pq.write_table(pa.table({"id": [1, 2, 3], "name": ["a", "b", None]}, schema=schema), path)
    loading = asyncio.create_task(warehouse.load_parquet(table, path, f"job_{unique}"))
    seen = []
    for _ in range(6000):  # bounded: a minute at most
        await asyncio.sleep(0.01)
        if loading.done():
            break
        seen.append(await warehouse.load_running(f"job_{unique}"))
    first = await loading
    assert (first.rows_loaded, first.adopted) == (3, False)
    assert seen[:1] == [True]  # running from the start (the table is created first)
    assert not await warehouse.load_running(f"job_{unique}")
    again = await warehouse.load_parquet(table, path, f"job_{unique}")
    assert (again.rows_loaded, again.adopted) == (3, True)
    assert await warehouse.count_rows(table.name) == 3
    assert (table.name, 3) in await warehouse.tables()
    await warehouse.close()


async def test_firestore_sweep_cursors_read_back_what_was_written(
    emulators: Emulators, unique: str
) -> None:
    settings = replace_settings(emulators.settings(), ledger_collection=f"ledger-{unique}")
    cursors = FirestoreSweepCursors.from_settings(settings)
    assert await cursors.get("k") is None
    await cursors.put(SweepCursor("k", "token-2", 2000, done=False))
    assert await cursors.get("k") == SweepCursor("k", "token-2", 2000, False)
    await cursors.put(SweepCursor("k", None, 2500, done=True))
    assert await cursors.get("k") == SweepCursor("k", None, 2500, True)
    await cursors.close()


async def test_bigquery_peek_lists_and_filters_by_parameters(
    emulators: Emulators, unique: str, tmp_path: Path
) -> None:
    warehouse = BigQueryWarehouse.from_settings(emulators.settings())
    table = TableSpec(f"{unique}.peeked", (Column("id", "INTEGER"), Column("name", "STRING")))
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}), path)
    await warehouse.load_parquet(table, path, f"job_peek_{unique}")
    listed = await warehouse.peek(table.name, 10)
    assert listed.columns == ("id", "name") and len(listed.rows) == 3
    assert len((await warehouse.peek(table.name, 2)).rows) == 2
    found = await warehouse.peek(table.name, 10, [RowFilter("id", ">=", "2")])
    assert sorted(found.rows) == [(2, "b"), (3, "c")]
    sneaky = [RowFilter("name", "=", "a' OR '1'='1")]
    assert (await warehouse.peek(table.name, 10, sneaky)).rows == ()
    with pytest.raises(PermanentError, match="no column"):
        await warehouse.peek(table.name, 10, [RowFilter("1=1 OR id", "=", "1")])
    with pytest.raises(PermanentError, match=r"is not DATASET\.TABLE"):
        await warehouse.peek(f"{unique}.peeked` WHERE TRUE --", 10)
    await warehouse.close()
