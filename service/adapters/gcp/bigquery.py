"""BigQuery as the Warehouse: Parquet load jobs with caller-chosen job ids (409 = adopt)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from service.adapters.gcp.errors import translate
from service.models import LoadResult, TableSpec
from service.settings import Settings

JOB_TIMEOUT_SECONDS = 540.0


class BigQueryWarehouse:
    def __init__(self, client: bigquery.Client, location: str) -> None:
        self.client = client
        self.location = location
        self._datasets: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> BigQueryWarehouse:
        if settings.bigquery_endpoint:
            client = bigquery.Client(
                project=settings.project,
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": settings.bigquery_endpoint},
            )
        else:
            client = bigquery.Client(project=settings.project, location=settings.bigquery_location)
        return cls(client, settings.bigquery_location)

    async def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except Exception as exc:
            raise translate(exc, what) from exc

    async def load_parquet(
        self, table: TableSpec, path: Path, job_id: str, *, replace_partition: str | None = None
    ) -> LoadResult:
        await self._ensure_dataset(table.dataset)
        destination = f"{self.client.project}.{table.name}"
        if replace_partition is not None:
            destination += "$" + replace_partition.replace("-", "")
        config = _load_config(table, replace=replace_partition is not None)
        result: LoadResult = await self._call(
            f"load {table.name} job {job_id}", self._load, path, destination, job_id, config
        )
        return result

    def _load(
        self, path: Path, destination: str, job_id: str, config: bigquery.LoadJobConfig
    ) -> LoadResult:
        adopted = False
        job: Any
        try:
            with path.open("rb") as source:
                job = self.client.load_table_from_file(
                    source, destination, job_id=job_id, job_config=config, location=self.location
                )
        except gexc.Conflict:
            # The job id exists: an earlier attempt submitted it. Wait for it and adopt it.
            job = self.client.get_job(job_id, location=self.location)
            adopted = True
        job.result(timeout=JOB_TIMEOUT_SECONDS)
        return LoadResult(job_id, int(job.output_rows or 0), adopted)

    async def _ensure_dataset(self, dataset: str) -> None:
        if dataset in self._datasets:
            return
        ref = bigquery.Dataset(f"{self.client.project}.{dataset}")
        ref.location = self.location
        await self._call(
            f"create dataset {dataset}", self.client.create_dataset, ref, exists_ok=True
        )
        self._datasets.add(dataset)

    async def count_rows(self, table: str) -> int:
        sql = f"SELECT COUNT(*) AS n FROM `{self.client.project}.{table}`"

        def run() -> int:
            rows = list(self.client.query(sql, location=self.location).result())
            return int(rows[0]["n"])

        count: int = await self._call(f"count {table}", run)
        return count

    async def tables(self) -> list[tuple[str, int]]:
        def names() -> list[str]:
            found = []
            for dataset in self.client.list_datasets():
                for table in self.client.list_tables(dataset.dataset_id):
                    found.append(f"{dataset.dataset_id}.{table.table_id}")
            return sorted(found)

        listed: list[str] = await self._call("list tables", names)
        return [(name, await self.count_rows(name)) for name in listed]

    async def ping(self) -> None:
        await self._call("ping bigquery", lambda: list(self.client.list_datasets(max_results=1)))

    async def close(self) -> None:
        self.client.close()


def _load_config(table: TableSpec, *, replace: bool) -> bigquery.LoadJobConfig:
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        schema=[bigquery.SchemaField(c.name, c.type, mode=c.mode) for c in table.columns],
        create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
        write_disposition=(
            bigquery.WriteDisposition.WRITE_TRUNCATE
            if replace
            else bigquery.WriteDisposition.WRITE_APPEND
        ),
    )
    if table.partition_field:
        config.time_partitioning = bigquery.TimePartitioning(field=table.partition_field)
    if table.clustering:
        config.clustering_fields = list(table.clustering)
    return config
