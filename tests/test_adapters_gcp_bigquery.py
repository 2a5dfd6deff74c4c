"""The BigQuery adapter against a recording client: which API calls it makes, with what ids.

The emulator (tests/test_adapters_gcp.py) has no IAM and accepts any job id; this fake holds
the two rules of real BigQuery the adapter must respect: a dataset is created only by someone
with ``bigquery.datasets.create`` on the project, and job ids are letters, digits, ``_``, ``-``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.api_core import exceptions as gexc

from service.adapters.gcp.bigquery import BigQueryWarehouse
from service.adapters.gcp.bigquery_specs import bigquery_job_id, peek_query
from service.errors import PermanentError
from service.models import Column, RowFilter, TableSpec

# BigQuery's rule for job ids (JobReference.jobId).
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,1024}")


class FakeJob:
    def __init__(self, job_id: str, rows: int) -> None:
        self.job_id = job_id
        self.output_rows = rows
        self.state = "DONE"
        self.error_result = None

    def result(self, timeout: float | None = None) -> FakeJob:
        return self


class RecordingClient:
    """The few BigQuery client methods the adapter uses, recorded; no project-level rights."""

    project = "p"

    def __init__(self, datasets: set[str]) -> None:
        self.datasets = datasets
        self.calls: list[str] = []
        self.jobs: dict[str, FakeJob] = {}

    def get_dataset(self, ref: str, dataset_view: Any = None) -> object:
        self.calls.append(f"get_dataset {ref}")
        if ref.split(".")[1] not in self.datasets:
            raise gexc.NotFound(f"dataset {ref}")
        return object()

    def create_dataset(self, dataset: Any, exists_ok: bool = False) -> object:
        self.calls.append(f"create_dataset {dataset.dataset_id}")
        # Real BigQuery checks bigquery.datasets.create on the project first: the runner lacks it.
        raise gexc.Forbidden("Permission bigquery.datasets.create denied on project p")

    def create_table(self, table: Any, exists_ok: bool = False) -> Any:
        self.calls.append(f"create_table {table.table_id}")
        return table

    def load_table_from_file(
        self, source: Any, destination: str, job_id: str, job_config: Any, location: str
    ) -> FakeJob:
        self.calls.append(f"load {job_id}")
        if not JOB_ID.fullmatch(job_id):
            raise gexc.BadRequest(f"Invalid job ID {job_id!r}")
        job = FakeJob(job_id, source.seek(0, 2) and 2)
        self.jobs[job_id] = job
        return job

    def get_job(self, job_id: str, location: str) -> FakeJob:
        return self.jobs[job_id]

    def close(self) -> None:
        pass


TABLE = TableSpec("sales.orders", (Column("id", "INTEGER", "REQUIRED"),))


@pytest.fixture
def parquet(tmp_path: Path) -> Path:
    path = tmp_path / "rows.parquet"
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    pq.write_table(pa.table({"id": [1, 2]}, schema=schema), path)
    return path


async def test_an_existing_dataset_is_read_not_created(parquet: Path) -> None:
    client = RecordingClient(datasets={"sales"})
    warehouse = BigQueryWarehouse(client, "EU")  # type: ignore[arg-type]
    result = await warehouse.load_parquet(TABLE, parquet, "ingest_orders_abc")
    assert result.rows_loaded == 2
    assert client.calls == [
        "get_dataset p.sales",
        "create_table orders",
        "load ingest_orders_abc",
    ]


async def test_a_missing_dataset_is_created_once(parquet: Path) -> None:
    client = RecordingClient(datasets=set())
    warehouse = BigQueryWarehouse(client, "EU")  # type: ignore[arg-type]
    with pytest.raises(PermanentError, match=r"bigquery\.datasets\.create"):
        await warehouse.load_parquet(TABLE, parquet, "ingest_orders_abc")
    assert client.calls == ["get_dataset p.sales", "create_dataset sales"]


async def test_a_pipeline_name_with_a_dot_gives_a_valid_job_id(parquet: Path) -> None:
    client = RecordingClient(datasets={"sales"})
    warehouse = BigQueryWarehouse(client, "EU")  # type: ignore[arg-type]
    result = await warehouse.load_parquet(TABLE, parquet, "ingest_orders.v2_0123abcd")
    assert result.job_id == "ingest_orders_v2_0123abcd"
    assert client.calls[-1] == "load ingest_orders_v2_0123abcd"
    again = await warehouse.load_parquet(TABLE, parquet, "ingest_orders.v2_0123abcd")
    assert again.job_id == result.job_id  # same unit, same job: a retry still adopts it


def test_job_ids_keep_to_bigquerys_alphabet_and_length() -> None:
    assert bigquery_job_id("ingest_a-b_c") == "ingest_a-b_c"
    assert bigquery_job_id("ingest_é/x y.z") == "ingest___x_y_z"
    long = bigquery_job_id("x" * 2000)
    assert JOB_ID.fullmatch(long + "_stage_r9")


def test_a_filtered_peek_quotes_checked_columns_and_passes_values_as_parameters() -> None:
    from google.cloud import bigquery

    found = bigquery.Table(
        "p.sales.orders",
        schema=[bigquery.SchemaField("amount", "NUMERIC"), bigquery.SchemaField("day", "DATE")],
    )
    where = [RowFilter("amount", ">", "10"), RowFilter("day", "=", "2026-11-20' OR TRUE --")]
    sql, config = peek_query(found, where, 5)
    assert sql == (
        "SELECT * FROM `p.sales.orders` WHERE `amount` > CAST(@v0 AS NUMERIC)"
        " AND `day` = CAST(@v1 AS DATE) LIMIT @limit"
    )
    values = {p.name: (p.type_, p.value) for p in config.query_parameters}
    assert values == {
        "v0": ("STRING", "10"),
        "v1": ("STRING", "2026-11-20' OR TRUE --"),
        "limit": ("INT64", 5),
    }
    assert config.maximum_bytes_billed == 10**9
