"""load: the embedded warehouse's once-only loads of a spooled file, and how the BigQuery
adapter's errors decide retry or not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.api_core import exceptions as gexc

from service.adapters.gcp.errors import translate
from service.adapters.local.duckdb_warehouse import DuckDbWarehouse
from service.errors import IngestError, PermanentError, TransientError
from service.models import Column, LoadResult, TableSpec
from service.pipeline.spool import ParquetSpool

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


async def test_a_schema_that_gained_a_column_or_relaxed_one_evolves_the_table(
    warehouse: DuckDbWarehouse, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await warehouse.load_parquet(TABLE, await spooled(tmp_path, [1], date(2026, 11, 20)), "a")
    wider = replace(
        TABLE,
        columns=(
            Column("id", "INTEGER"),
            Column("day", "DATE"),
            Column("tags", "STRING", "REPEATED"),
        ),
    )
    second = tmp_path / "wider.parquet"
    rows = {"id": [2], "day": [date(2026, 11, 20)], "tags": [["a", "b"]]}
    pq.write_table(pa.table(rows), second)
    with caplog.at_level("INFO"):
        await warehouse.load_parquet(wider, second, "b")
    assert "added column tags (STRING REPEATED), relaxed column id to NULLABLE" in caplog.text
    assert await warehouse.count_rows(TABLE.name) == 2

    def columns(conn: Any) -> list[tuple[str, str, str]]:
        found: list[tuple[str, str, str]] = conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_name = 'events' ORDER BY ordinal_position"
        ).fetchall()
        return found

    assert await warehouse._run(columns) == [
        ("id", "BIGINT", "YES"),
        ("day", "DATE", "YES"),
        ("tags", "VARCHAR[]", "YES"),
    ]
