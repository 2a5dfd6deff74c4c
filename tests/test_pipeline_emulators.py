"""The pipeline on the emulators, through Google's real client libraries: fake-gcs-server for
Cloud Storage, local-bigquery for BigQuery (it reads gs:// URIs from fake-gcs-server's folder),
the Firestore emulator for the ledger. Each test has its own bucket, dataset and collection.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.adapters.gcp.bigquery import BigQueryWarehouse
from service.adapters.gcp.firestore import FirestoreLedgerStore
from service.adapters.gcp.gcs import GcsObjectStore
from service.deploy.permissions import Grant
from service.ingest import Ingestor
from service.ledger import Ledger
from service.models import (
    Column,
    EventMeta,
    LedgerRecord,
    LoadResult,
    ObjectFinalized,
    ObjectInfo,
    ObjectRef,
    RowFilter,
    Rows,
    SweepRequested,
    TableSpec,
    UnitState,
)
from service.pipeline.definition import BadRowPolicy, CsvOptions, Pipeline, PipelineSet
from service.pipeline.runner import Runner
from service.ports import IdempotencyStore, ListPage, ObjectStore, UriLoad, Warehouse
from service.results import Status
from tests.crash_kit import DiesBeforeCompletion, FakeClock, Killed
from tests.emulator_fixtures import Emulators
from tests.permission_recorder import Recorder, breaches
from tests.pipeline_support import (
    EVENTS,
    SCHEMA,
    csv_rows,
    event,
    event_files,
    ledger_record,
    pipeline,
)

pytestmark = pytest.mark.emulators

LEASE = 60.0
ROWS = csv_rows(*[f"{i},n{i},{i}.25,2026-11-20" for i in range(1, 51)])


class CountingStore:
    """An object store that counts the bytes it streams to the service."""

    def __init__(self, inner: GcsObjectStore) -> None:
        self.inner = inner
        self.bytes_read = 0

    async def stat(self, ref: ObjectRef) -> ObjectInfo:
        return await self.inner.stat(ref)

    async def read(self, ref: ObjectRef, chunk_bytes: int) -> AsyncIterator[bytes]:
        async for chunk in self.inner.read(ref, chunk_bytes):
            self.bytes_read += len(chunk)
            yield chunk

    async def list(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        return await self.inner.list(bucket, prefix)

    async def list_page(
        self, bucket: str, prefix: str, page_token: str | None, page_size: int
    ) -> ListPage:
        return await self.inner.list_page(bucket, prefix, page_token, page_size)

    async def write(self, ref: ObjectRef, data: bytes, content_type: str) -> ObjectRef:
        return await self.inner.write(ref, data, content_type)

    async def copy_generation(self, source: ObjectRef, target: ObjectRef) -> ObjectRef:
        return await self.inner.copy_generation(source, target)

    async def delete(self, ref: ObjectRef) -> None:
        await self.inner.delete(ref)

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


class OverwrittenBeforeTheLoad:
    """BigQuery, but the unit's object is overwritten just before each load from gs:// starts:
    the race between the service's checks and the load job."""

    def __init__(self, inner: BigQueryWarehouse, overwrite: Callable[[], Awaitable[object]]):
        self.inner = inner
        self.overwrite = overwrite
        self.uris: list[str] = []

    async def load_uri(self, load: UriLoad) -> LoadResult:
        await self.overwrite()
        self.uris.append(load.source.uri)
        return await self.inner.load_uri(load)

    async def load_parquet(
        self, table: TableSpec, path: Path, job_id: str, *, replace_partition: str | None = None
    ) -> LoadResult:
        return await self.inner.load_parquet(
            table, path, job_id, replace_partition=replace_partition
        )

    async def count_rows(self, table: str) -> int:
        return await self.inner.count_rows(table)

    async def load_running(self, job_id: str) -> bool:
        return await self.inner.load_running(job_id)

    async def tables(self) -> list[tuple[str, int]]:
        return await self.inner.tables()

    async def peek(self, table: str, limit: int, where: Sequence[RowFilter] = ()) -> Rows:
        return await self.inner.peek(table, limit, where)

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class Cloud:
    name: str
    store: GcsObjectStore
    warehouse: BigQueryWarehouse
    ledger_store: FirestoreLedgerStore
    clock: FakeClock

    @property
    def table(self) -> str:
        return f"{self.name}.orders"

    def pipeline(self, **changes: Any) -> Pipeline:
        table = TableSpec(self.table, SCHEMA, partition_field="day", clustering=("id",))
        return pipeline(bucket=self.name, table=table, **changes)

    async def put(
        self, name: str, data: bytes, *, content_encoding: str | None = None
    ) -> ObjectInfo:
        def upload() -> int:
            blob = self.store.client.bucket(self.name).blob(name)
            blob.content_encoding = content_encoding
            blob.upload_from_string(data, content_type="application/octet-stream")
            return int(blob.generation)

        generation = await asyncio.to_thread(upload)
        return await self.store.stat(ObjectRef(self.name, name, generation))

    def ingestor(
        self,
        p: Pipeline,
        *,
        ledger_store: IdempotencyStore | None = None,
        store: ObjectStore | None = None,
        warehouse: Warehouse | None = None,
    ) -> Ingestor:
        ledger = Ledger(
            ledger_store or self.ledger_store, owner="t", lease_seconds=LEASE, clock=self.clock
        )
        objects = store or self.store
        runner = Runner(objects, warehouse or self.warehouse, chunk_bytes=256 * 1024)
        return Ingestor(
            PipelineSet((p,)),
            objects,
            ledger,
            runner,
            renew_every_seconds=LEASE / 3,
            stall_seconds=LEASE / 2,
            max_units_in_flight=4,
        )

    async def count(self) -> int:
        return await self.warehouse.count_rows(self.table)

    async def ids(self) -> list[int]:
        sql = f"SELECT id FROM `{self.warehouse.client.project}.{self.table}` ORDER BY id"

        def run() -> list[int]:
            return [int(r["id"]) for r in self.warehouse.client.query(sql).result()]

        return await asyncio.to_thread(run)

    async def record(self, p: Pipeline, info: ObjectInfo) -> LedgerRecord:
        return await ledger_record(self.ledger_store, p, info)


@pytest.fixture
async def cloud(emulators: Emulators, unique: str, tmp_path: Path) -> AsyncIterator[Cloud]:
    settings = emulators.settings(data_dir=tmp_path / "data", ledger_collection=unique)
    store = GcsObjectStore.from_settings(settings)
    await asyncio.to_thread(store.client.create_bucket, unique)
    found = Cloud(
        unique,
        store,
        BigQueryWarehouse.from_settings(settings),
        FirestoreLedgerStore.from_settings(settings),
        FakeClock(),
    )
    yield found
    for backend in (found.store, found.warehouse, found.ledger_store):
        await backend.close()


def finalized(info: ObjectInfo, event_id: str = "e1") -> ObjectFinalized:
    return ObjectFinalized(
        EventMeta(event_id, "google.cloud.storage.object.v1.finalized", "t"), info
    )


async def test_csv_with_bad_rows_loads_the_rest_and_quarantines_in_gcs(cloud: Cloud) -> None:
    p = cloud.pipeline(lineage=True)
    data = csv_rows("1,a,1.5,2026-11-20", "x,b,2,2026-11-20", "3,c", "4,d,,2026-11-20")
    info = await cloud.put("orders/a.csv", data)
    outcome = await cloud.ingestor(p).handle(finalized(info))
    assert outcome.status is Status.LOADED
    assert (outcome.summary()["rows_loaded"], outcome.summary()["rows_quarantined"]) == (2, 2)
    assert await cloud.ids() == [1, 4]
    record = await cloud.record(p, info)
    assert record.state is UnitState.COMPLETED and record.result is not None
    assert (record.result.rows_read, record.result.rows_loaded, record.result.rows_quarantined) == (
        4,
        2,
        2,
    )
    assert record.result.quarantine_uri is not None
    name = record.result.quarantine_uri.removeprefix(f"gs://{cloud.name}/")
    blob = cloud.store.client.bucket(cloud.name).blob(name)
    lines = [json.loads(x) for x in (await asyncio.to_thread(blob.download_as_bytes)).splitlines()]
    assert [line["row"] for line in lines] == [2, 3]


async def test_the_same_event_three_times_at_once_lands_once(cloud: Cloud) -> None:
    p = cloud.pipeline()
    info = await cloud.put("orders/a.csv", ROWS)
    ingestor = cloud.ingestor(p)
    outcomes = await asyncio.gather(*(ingestor.handle(finalized(info)) for _ in range(3)))
    assert [o.status for o in outcomes].count(Status.LOADED) == 1
    assert await cloud.count() == 50


async def test_the_same_event_three_times_in_a_row_lands_once(cloud: Cloud) -> None:
    p = cloud.pipeline()
    info = await cloud.put("orders/a.csv", ROWS)
    ingestor = cloud.ingestor(p)
    statuses = [(await ingestor.handle(finalized(info, f"e{n}"))).status for n in range(3)]
    assert statuses == [Status.LOADED, Status.DUPLICATE, Status.DUPLICATE]
    assert await cloud.count() == 50


async def crash_after_the_load(cloud: Cloud, p: Pipeline) -> ObjectInfo:
    """A process loads a new file and dies before the ledger hears."""
    info = await cloud.put("orders/a.csv", ROWS)
    dying = cloud.ingestor(p, ledger_store=DiesBeforeCompletion(cloud.ledger_store))
    with pytest.raises(Killed):
        await dying.handle(finalized(info, "first"))
    return info


async def test_a_crash_between_load_and_completion_then_redelivery_lands_once(
    cloud: Cloud,
) -> None:
    p = cloud.pipeline()
    info = await crash_after_the_load(cloud, p)
    assert await cloud.count() == 50
    cloud.clock.now += timedelta(seconds=LEASE + 1)
    outcome = await cloud.ingestor(p).handle(finalized(info, "second"))
    assert outcome.status is Status.LOADED
    assert await cloud.count() == 50  # the redelivery adopted the first load job (409)
    record = await cloud.record(p, info)
    assert record.state is UnitState.COMPLETED and record.attempt == 2


async def test_a_takeover_after_a_settings_change_adopts_the_first_load_job(
    cloud: Cloud,
) -> None:
    p = cloud.pipeline()
    info = await crash_after_the_load(cloud, p)
    cloud.clock.now += timedelta(seconds=LEASE + 1)
    changed = cloud.pipeline(csv=CsvOptions(null_values=("", "NULL")))
    outcome = await cloud.ingestor(changed).handle(finalized(info, "second"))
    assert outcome.status is Status.LOADED
    assert await cloud.count() == 50  # the recorded job id: BigQuery answered 409, adopted


async def test_the_same_bytes_uploaded_again_are_a_duplicate(cloud: Cloud) -> None:
    p = cloud.pipeline()
    ingestor = cloud.ingestor(p)
    first = await cloud.put("orders/a.csv", ROWS)
    assert (await ingestor.handle(finalized(first))).status is Status.LOADED
    again = await cloud.put("orders/a.csv", ROWS)
    assert again.ref.generation != first.ref.generation
    outcome = await ingestor.handle(finalized(again, "e2"))
    assert outcome.status is Status.DUPLICATE
    assert outcome.reason == f"same content as generation {first.ref.generation}"
    assert await cloud.count() == 50


async def test_ndjson_parquet_and_gzip_load(cloud: Cloud) -> None:
    ndjson = b'{"id": 1, "name": "j", "day": "2026-11-20"}\n{"id": 2, "amount": 2.5}\n'
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": [3, 4], "day": [date(2026, 11, 20)] * 2}), sink)
    gz = gzip.compress(csv_rows("5,g,5,2026-11-20")) + gzip.compress(b"6,h,6,2026-11-20\n")
    for p, name, data, encoding in [
        (cloud.pipeline(format="ndjson"), "orders/a.json", ndjson, None),
        (cloud.pipeline(format="parquet"), "orders/b.parquet", sink.getvalue(), None),
        (cloud.pipeline(), "orders/c.csv", gz, "gzip"),
    ]:
        info = await cloud.put(name, data, content_encoding=encoding)
        outcome = await cloud.ingestor(p).handle(finalized(info))
        assert outcome.status is Status.LOADED, outcome
    assert await cloud.ids() == [1, 2, 3, 4, 5, 6]


async def test_replacing_a_partition_on_bigquery(cloud: Cloud) -> None:
    p = cloud.pipeline(write_mode="replace_partition")
    ingestor = cloud.ingestor(p)
    for name, rows in [
        ("orders/2026-11-19.csv", ["1,a,1,2026-11-19"]),
        ("orders/2026-11-20.csv", ["2,b,1,2026-11-20", "3,c,1,2026-11-20"]),
        ("orders/2026-11-20.csv", ["4,d,1,2026-11-20"]),  # a corrected file for the same day
    ]:
        info = await cloud.put(name, csv_rows(*rows))
        outcome = await ingestor.handle(finalized(info))
        assert outcome.status is Status.LOADED, outcome
    assert await cloud.ids() == [1, 4]
    again = await cloud.ingestor(p).handle(finalized(info, "redelivered"))
    assert again.status is Status.DUPLICATE
    assert await cloud.ids() == [1, 4]


async def test_the_gs_fast_path_loads_without_the_bytes_passing_through(cloud: Cloud) -> None:
    p = cloud.pipeline(lineage=False, bad_rows=BadRowPolicy(max_count=0, max_ratio=None))
    body = csv_rows(*[f"{i},name {i},{i}.5,2026-11-20" for i in range(1, 20_001)])
    info = await cloud.put("orders/big.csv", body)
    counting = CountingStore(cloud.store)
    outcome = await cloud.ingestor(p, store=counting).handle(finalized(info))
    assert outcome.status is Status.LOADED
    assert await cloud.count() == 20_000
    assert counting.bytes_read < len(body) / 2  # only the header was read, to check its order
    record = await cloud.record(p, info)
    assert record.result is not None and set(record.result.durations) == {"load"}


async def test_the_fast_path_loads_the_events_generation_though_it_was_overwritten(
    cloud: Cloud,
) -> None:
    p = cloud.pipeline(lineage=False, bad_rows=BadRowPolicy(max_count=0, max_ratio=None))
    older = await cloud.put("orders/a.csv", csv_rows("1,a,1,2026-11-20", "2,b,1,2026-11-20"))
    racing = OverwrittenBeforeTheLoad(
        cloud.warehouse, lambda: cloud.put("orders/a.csv", csv_rows("9,z,1,2026-11-20"))
    )
    outcome = await cloud.ingestor(p, warehouse=racing).handle(finalized(older))
    assert outcome.status is Status.LOADED
    assert len(racing.uris) == 1  # the fast path ran, on a copy of the older generation
    assert await cloud.ids() == [1, 2]
    assert [o.ref.name for o in await cloud.store.list(cloud.name, "")] == ["orders/a.csv"]


async def test_the_fast_path_falls_back_to_streaming_when_bigquery_refuses(cloud: Cloud) -> None:
    p = cloud.pipeline(lineage=False)  # up to half the rows may be bad
    info = await cloud.put(
        "orders/a.csv", csv_rows("1,a,1,2026-11-20", "oops,b,1,2026-11-20", "3,c,1,2026-11-20")
    )
    outcome = await cloud.ingestor(p).handle(finalized(info))
    assert outcome.status is Status.LOADED
    assert await cloud.ids() == [1, 3]
    record = await cloud.record(p, info)
    assert record.result is not None
    assert (record.result.rows_loaded, record.result.rows_quarantined) == (2, 1)
    assert record.result.job_id is not None and record.result.job_id.endswith("_r1")


async def test_a_table_with_another_schema_rejects_the_file(cloud: Cloud) -> None:
    other = TableSpec(cloud.table, (Column("id", "STRING"), Column("day", "DATE")), "day")
    await cloud.warehouse._ensure_dataset(cloud.name)
    await cloud.warehouse._ensure_table(other)
    p = cloud.pipeline()
    info = await cloud.put("orders/a.csv", ROWS)
    outcome = await cloud.ingestor(p).handle(finalized(info))
    assert outcome.status is Status.FAILED
    record = await cloud.record(p, info)
    assert record.state is UnitState.FAILED and record.result is not None
    r = record.result
    # No row was bad: the quarantine holds only the reason; the 50 rows were rejected with it.
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined, r.rows_rejected) == (50, 0, 0, 50)
    assert record.error is not None and "exists with another schema" in record.error
    assert await cloud.count() == 0


async def test_a_sweep_lists_gcs_for_its_date_and_skips_what_is_done(cloud: Cloud) -> None:
    p = cloud.pipeline(prefix="in/{date}/", glob="*.csv")
    for n in range(3):
        await cloud.put(f"in/2026-11-20/{n}.csv", csv_rows(f"{n},x,1,2026-11-20"))
    await cloud.put("in/2026-11-21/9.csv", csv_rows("9,x,1,2026-11-21"))
    meta = EventMeta("s1", "google.cloud.pubsub.topic.v1.messagePublished", "scheduler")
    ingestor = cloud.ingestor(p)
    first = (await ingestor.handle(SweepRequested(meta, p.name, "2026-11-20"))).summary()
    assert first["sweep"] == {"objects": 3, "loaded": 3, "skipped": 0, "failed": 0, "retry": 0}
    second = (await ingestor.handle(SweepRequested(meta, p.name, "2026-11-20"))).summary()
    assert second["sweep"]["skipped"] == 3
    assert await cloud.ids() == [0, 1, 2]


async def test_the_runner_calls_only_what_the_deploy_plan_grants(
    cloud: Cloud, api_calls: Recorder, plan_grants: frozenset[Grant]
) -> None:
    start = len(api_calls.calls)
    fast = cloud.pipeline(lineage=False, bad_rows=BadRowPolicy(max_count=0, max_ratio=None))
    info = await cloud.put("orders/a.csv", ROWS)
    assert (await cloud.ingestor(fast).handle(finalized(info))).status is Status.LOADED
    streamed = cloud.pipeline(lineage=False)  # BigQuery refuses the bad row: streamed
    info = await cloud.put("orders/b.csv", csv_rows("51,a,1,2026-11-20", "x,b,1,2026-11-20"))
    assert (await cloud.ingestor(streamed).handle(finalized(info))).status is Status.LOADED
    calls = api_calls.calls[start:]
    by_runner = {c.method for c in calls if c.caller.identity == "runner"}
    assert {
        "storage.objects.get",
        "storage.objects.rewrite",
        "storage.objects.delete",
        "storage.objects.insert",
        "bigquery.datasets.get",
        "bigquery.jobs.insert",
        "google.firestore.v1.Firestore.Commit",
    } <= by_runner
    assert breaches(calls, plan_grants) == []


# ---- nested feeds and evolving schemas on BigQuery ---------------------------------------------


@pytest.mark.parametrize(("name", "fmt", "data"), event_files(12))
async def test_a_nested_feed_loads_into_bigquery_with_its_values_intact(
    cloud: Cloud, name: str, fmt: Literal["ndjson", "parquet"], data: bytes
) -> None:
    # The emulator stores a GEOGRAPHY column as BYTES (BigQuery keeps GEOGRAPHY): left out.
    columns = tuple(c for c in EVENTS.columns if c.type != "GEOGRAPHY")
    table = TableSpec(f"{cloud.name}.events", columns)
    p = pipeline(
        bucket=cloud.name,
        table=table,
        format=fmt,
        bad_rows=BadRowPolicy(),
        ignore_unknown_fields=True,  # the file's GEOGRAPHY column
    )
    outcome = await cloud.ingestor(p).handle(finalized(await cloud.put(name, data)))
    assert outcome.status is Status.LOADED, outcome.summary()
    sql = (
        "SELECT id, user, items, TO_JSON_STRING(payload) AS payload"
        f" FROM `{cloud.warehouse.client.project}.{table.name}` ORDER BY id"
    )

    def run() -> list[Any]:
        return list(cloud.warehouse.client.query(sql).result())

    rows = await asyncio.to_thread(run)
    assert [r["id"] for r in rows] == list(range(12))
    for row in rows[:4]:
        sent = event(row["id"])
        assert row["user"] == sent["user"]
        assert [(i["sku"], float(i["price"]), i["tags"]) for i in row["items"]] == [
            (i["sku"], i["price"], i["tags"]) for i in sent["items"]
        ]
        assert json.loads(row["payload"] or "null") == sent["payload"]


async def test_a_column_added_between_two_files_loads_both_into_bigquery(cloud: Cloud) -> None:
    first = cloud.pipeline()
    await cloud.ingestor(first).handle(finalized(await cloud.put("orders/a.csv", ROWS)))
    columns = (*SCHEMA, Column("channel", "STRING"))
    wider = pipeline(bucket=cloud.name, table=TableSpec(cloud.table, columns, "day", ("id",)))
    data = csv_rows("51,z,1,2026-11-20,web", header="id,name,amount,day,channel")
    outcome = await cloud.ingestor(wider).handle(finalized(await cloud.put("orders/b.csv", data)))
    assert outcome.status is Status.LOADED, outcome.summary()
    assert await cloud.count() == 51


async def test_a_replace_partition_pipeline_changes_the_schema_then_replaces(
    cloud: Cloud,
) -> None:
    first = cloud.pipeline(write_mode="replace_partition")
    for name, rows in [
        ("orders/2026-11-19.csv", ["1,a,1,2026-11-19"]),
        ("orders/2026-11-20.csv", ["2,b,1,2026-11-20", "3,c,1,2026-11-20"]),
    ]:
        outcome = await cloud.ingestor(first).handle(
            finalized(await cloud.put(name, csv_rows(*rows)))
        )
        assert outcome.status is Status.LOADED, outcome.summary()
    columns = (Column("id", "INTEGER"), *SCHEMA[1:], Column("channel", "STRING"))
    table = TableSpec(cloud.table, columns, "day", ("id",))
    wider = pipeline(bucket=cloud.name, table=table, write_mode="replace_partition")
    data = csv_rows("4,d,1,2026-11-20,web", header="id,name,amount,day,channel")
    info = await cloud.put("orders/2026-11-20.csv", data)
    outcome = await cloud.ingestor(wider).handle(finalized(info))
    assert outcome.status is Status.LOADED, outcome.summary()
    sql = f"SELECT id, channel FROM `{cloud.warehouse.client.project}.{cloud.table}` ORDER BY id"

    def run() -> list[tuple[int, str | None]]:
        return [(int(r["id"]), r["channel"]) for r in cloud.warehouse.client.query(sql).result()]

    assert await asyncio.to_thread(run) == [(1, None), (4, "web")]
    ref = f"{cloud.warehouse.client.project}.{cloud.table}"
    found = await asyncio.to_thread(cloud.warehouse.client.get_table, ref)
    modes = {f.name: f.mode for f in found.schema}
    assert (modes["id"], modes["channel"]) == ("NULLABLE", "NULLABLE")
