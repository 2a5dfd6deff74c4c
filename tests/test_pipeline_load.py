"""load: the Parquet spool, the embedded warehouse's once-only loads, the quarantine, and when
the warehouse may read a gs:// URI itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from google.api_core import exceptions as gexc

from service.adapters.gcp.errors import translate
from service.adapters.local.duckdb_warehouse import DuckDbWarehouse
from service.errors import IngestError, PermanentError, TransientError
from service.models import Column, LoadResult, ObjectInfo, ObjectRef, TableSpec, UriSource
from service.pipeline.config import BadRowPolicy, CsvOptions, Transform
from service.pipeline.context import BadRow
from service.pipeline.load import (
    ParquetSpool,
    QuarantineSpool,
    quarantine_ref,
    staging_ref,
    uri_source,
)
from service.pipeline.transform import output_schema
from tests.pipeline_support import Rig, pipeline

TABLE = TableSpec(
    "sales.events", (Column("id", "INTEGER", "REQUIRED"), Column("day", "DATE")), "day"
)


@pytest.fixture
async def warehouse(tmp_path: Path) -> AsyncIterator[DuckDbWarehouse]:
    found = DuckDbWarehouse(tmp_path / "w.duckdb")
    yield found
    await found.close()


async def spooled(tmp_path: Path, ids: list[int], day: date) -> Path:
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("day", pa.date32())])
    spool = ParquetSpool(schema, tmp_path)
    await spool.write(
        pa.RecordBatch.from_pydict({"id": ids, "day": [day] * len(ids)}, schema=schema)
    )
    path = await spool.finish()
    kept = tmp_path / f"{ids[0]}-{len(ids)}.parquet"
    path.rename(kept)
    return kept


async def test_a_job_id_loads_once(warehouse: DuckDbWarehouse, tmp_path: Path) -> None:
    path = await spooled(tmp_path, [1, 2, 3], date(2026, 11, 20))
    first = await warehouse.load_parquet(TABLE, path, "job-1")
    again = await warehouse.load_parquet(TABLE, path, "job-1")
    assert first == LoadResult("job-1", 3)
    assert again == LoadResult("job-1", 3, adopted=True)
    assert await warehouse.count_rows(TABLE.name) == 3


async def test_replacing_a_partition_keeps_the_other_days(
    warehouse: DuckDbWarehouse, tmp_path: Path
) -> None:
    await warehouse.load_parquet(TABLE, await spooled(tmp_path, [1, 2], date(2026, 11, 19)), "a")
    await warehouse.load_parquet(TABLE, await spooled(tmp_path, [3, 4], date(2026, 11, 20)), "b")
    fixed = await spooled(tmp_path, [5], date(2026, 11, 20))
    result = await warehouse.load_parquet(TABLE, fixed, "c", replace_partition="2026-11-20")
    assert result.rows_loaded == 1
    assert await warehouse.count_rows(TABLE.name) == 3


async def test_a_table_with_another_schema_is_refused(
    warehouse: DuckDbWarehouse, tmp_path: Path
) -> None:
    await warehouse.load_parquet(TABLE, await spooled(tmp_path, [1], date(2026, 11, 20)), "a")
    changed = replace(TABLE, columns=(Column("id", "STRING", "REQUIRED"), Column("day", "DATE")))
    with pytest.raises(PermanentError, match="exists with another schema: column 'id'"):
        await warehouse.load_parquet(changed, await spooled(tmp_path, [2], date(2026, 11, 20)), "b")
    assert await warehouse.count_rows(TABLE.name) == 1


async def test_the_spool_writes_lineage_text_as_dictionaries(tmp_path: Path) -> None:
    schema = output_schema(pipeline(lineage=True))
    assert pa.types.is_dictionary(schema.field("_source_uri").type)
    async with ParquetSpool(schema, tmp_path) as spool:
        path = await spool.finish()
        assert path.exists()
    assert not path.exists()  # the spool cleans up after itself


async def test_the_quarantine_is_one_jsonl_object_per_unit(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    info = await rig.put("orders/a.csv", b"id\n1\n")
    p = pipeline(bad_rows=replace(pipeline().bad_rows, quarantine="gs://quarantine/bad"))
    spool = QuarantineSpool()
    spool.add([BadRow(2, "id: 'x' is not a valid INTEGER", '{"id": "x"}')])
    spool.add([])
    written = await spool.publish(rig.store, rig.context(p, info), "rejected")
    spool.close()
    assert written is not None and written.rows == 1
    assert written.uri == f"gs://quarantine/bad/orders/orders/a.csv#{info.ref.generation}.jsonl"
    assert rig.quarantine(p, info) == [
        {"row": 2, "reason": "id: 'x' is not a valid INTEGER", "raw": '{"id": "x"}'},
        {"row": None, "reason": "rejected", "raw": None},
    ]
    await rig.close()


def test_the_default_quarantine_is_beside_the_source(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    info = ObjectInfo(ObjectRef("landing", "in/x.csv", 3), 1)
    ref = quarantine_ref(rig.context(pipeline(), info))
    assert ref == ObjectRef("landing", "_quarantine/orders/in/x.csv#3.jsonl")


def test_the_fast_path_stages_its_copy_under_the_quarantine_prefix(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    info = ObjectInfo(ObjectRef("landing", "in/x.csv", 3), 1)
    ref = staging_ref(rig.context(pipeline(), info))
    assert ref == ObjectRef("landing", "_quarantine/_staging/orders/3/in/x.csv")
    elsewhere = pipeline(bad_rows=BadRowPolicy(quarantine="gs://q/bad"))
    assert staging_ref(rig.context(elsewhere, info)).name == "bad/_staging/orders/3/in/x.csv"


class UriWarehouse(DuckDbWarehouse):
    async def load_uri(
        self,
        table: TableSpec,
        source: UriSource,
        job_id: str,
        *,
        replace_partition: str | None = None,
    ) -> LoadResult:
        raise AssertionError("not called here")


def test_the_fast_path_is_for_untransformed_native_uncompressed_files(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    fast = UriWarehouse(tmp_path / "u.duckdb")
    info = ObjectInfo(ObjectRef("landing", "in/x.csv", 3), 1)
    plain = pipeline()
    source = uri_source(rig.context(plain, info), fast)
    assert source == UriSource("gs://landing/in/x.csv", "CSV", skip_leading_rows=1)
    assert uri_source(rig.context(plain, info), rig.warehouse) is None  # DuckDB cannot
    refused = [
        pipeline(lineage=True),
        pipeline(transforms=(Transform("drop", "x"),)),
        pipeline(compression="gzip"),
        pipeline(csv=CsvOptions(encoding="utf-16")),
        pipeline(csv=CsvOptions(null_values=("NA", "NULL"))),
        pipeline(write_mode="replace_partition", partition_date="column"),
    ]
    for p in refused:
        assert uri_source(rig.context(p, info), fast) is None, p
    gz = ObjectInfo(ObjectRef("landing", "in/x.csv.gz", 3), 1)
    assert uri_source(rig.context(plain, gz), fast) is None
    json_source = uri_source(rig.context(pipeline(format="ndjson"), info), fast)
    assert json_source is not None and json_source.format == "NEWLINE_DELIMITED_JSON"


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (gexc.Forbidden("quota", errors=[{"reason": "quotaExceeded"}]), True),
        (gexc.TooManyRequests("slow down", errors=[{"reason": "rateLimitExceeded"}]), True),
        (gexc.InternalServerError("oops", errors=[{"reason": "backendError"}]), True),
        (gexc.BadRequest("busy", errors=[{"reason": "tableUnavailable"}]), True),
        (gexc.ServiceUnavailable("down"), True),
        (gexc.BadRequest("Could not serialize access to table due to concurrent update"), True),
        (gexc.BadRequest("Failed to commit: Failed to commit DuckLake transaction."), True),
        (gexc.BadRequest("bad row", errors=[{"reason": "invalid"}]), False),
        (gexc.Forbidden("no", errors=[{"reason": "accessDenied"}]), False),
        (gexc.NotFound("gone"), False),
    ],
)
def test_bigquery_errors_map_to_transient_or_permanent(error: Exception, transient: bool) -> None:
    """Load-job failures carry BigQuery's reason; quota, rate and backend ones are retried."""
    mapped = translate(error, "load t")
    assert isinstance(mapped, TransientError if transient else PermanentError)
    assert mapped.__class__ is not IngestError
