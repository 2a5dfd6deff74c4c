"""BigQuery as the Warehouse: load jobs with caller-chosen job ids, so a load happens once.

A job id is tried once; a 409 means the job exists (an earlier attempt, another worker): wait
for it and adopt its result. A job that ended in failure loaded nothing (load jobs are atomic),
so the next id of the unit's fixed sequence (``ID``, ``ID_r1``, ``ID_r2``...) may be tried;
every attempt walks the same sequence, so at most one of them can ever succeed.

Longer than 300 lines: loads, the partition swap and the dataset and table checks share that
job sequence and the client, and the reads (count, tables, peek) that client; each Google API
call carries its permission and retry note. How things are spelled for BigQuery (schemas, load
configs, job ids, peek queries) is bigquery_specs.py's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from google.cloud.bigquery.enums import DatasetView

from service.adapters.gcp.bigquery_specs import (
    TABLE_NAME,
    bigquery_job_id,
    describe_source,
    evolved,
    load_config,
    peek_query,
    spelled,
    spelled_column,
    staging_table_name,
    table_schema,
    update_options,
)
from service.adapters.gcp.errors import translate
from service.errors import IngestError, NotFoundError, PermanentError
from service.models import LoadResult, RowFilter, Rows, TableSpec
from service.ports import UriLoad
from service.schema_changes import SchemaChange, plan_change
from service.settings import Settings

log = logging.getLogger(__name__)
# One load job that would load a unit's file; the push ack deadline is at most 600 s.
JOB_TIMEOUT_SECONDS = 540.0
# Staging tables of partition replacements outlive any redelivery, then expire by themselves.
STAGING_LIFETIME = timedelta(days=8)
# Failed jobs skipped over before giving up on a unit (each failure loaded nothing).
MAX_JOB_ATTEMPTS = 8
# Submits one load job under the attempt id it is given, to the destination given.
Submit = Callable[[str, bigquery.LoadJobConfig, str], Any]


class BigQueryWarehouse:
    def __init__(self, client: bigquery.Client, location: str) -> None:
        self.client = client
        self.location = location
        self._datasets: set[str] = set()
        self._tables: set[TableSpec] = set()  # checked against BigQuery in this process
        self._schemas: dict[TableSpec, list[bigquery.SchemaField]] = {}  # as loads send it
        self._changes: dict[TableSpec, SchemaChange] = {}  # schema changes loads must make
        # Units of one table start together (a sweep): one of them creates it, once.
        self._creating = asyncio.Lock()
        # Loads under way, by the unit's job id: the id of the BigQuery job now awaited, or None
        # while none is (creating the table, uploading the file).
        self._loading: dict[str, str | None] = {}

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
        def submit(destination: str, config: bigquery.LoadJobConfig, attempt_id: str) -> Any:
            # jobs.insert (upload): bigquery.jobs.create on the project (jobUser) and
            # tables.updateData on the table (dataEditor). Load jobs per table per day are
            # capped (quotas#load_jobs; failed jobs count too). Submitted once per id: a 409
            # is adopted below, so the client's retry of the upload cannot load twice.
            with path.open("rb") as source:
                return self.client.load_table_from_file(
                    source,
                    destination,
                    job_id=attempt_id,
                    job_config=config,
                    location=self.location,
                )

        config = load_config(table, bigquery.SourceFormat.PARQUET)
        return await self._load(table, job_id, config, submit, replace_partition)

    async def load_uri(self, load: UriLoad) -> LoadResult:
        def submit(destination: str, config: bigquery.LoadJobConfig, attempt_id: str) -> Any:
            # jobs.insert: as above, and the job reads the gs:// object as the runner
            # (storage.objects.get on the staged copy).
            return self.client.load_table_from_uri(
                load.source.uri,
                destination,
                job_id=attempt_id,
                job_config=config,
                location=self.location,
            )

        config = load_config(load.table, load.source.format)
        describe_source(config, load.source)
        return await self._load(load.table, load.job_id, config, submit, load.replace_partition)

    async def _load(
        self,
        table: TableSpec,
        job_id: str,
        config: bigquery.LoadJobConfig,
        submit: Submit,
        replace_partition: str | None,
    ) -> LoadResult:
        job_id = bigquery_job_id(job_id)
        self._loading[job_id] = None
        try:
            if table not in self._tables:
                async with self._creating:
                    await self._ensure_dataset(table.dataset)
                    await self._ensure_table(table)
            config.schema = self._schemas.get(table, config.schema)
            change = self._changes.get(table)
            if change and replace_partition is None:
                # The load job makes the change: BigQuery's two allowed schema updates.
                config.schema_update_options = update_options(change)
            what = f"load {table.name} job {job_id}"
            if replace_partition is None:
                destination = self._ref(table.name)
                job, attempt_id, adopted = await self._call(
                    what, self._run_job, job_id, lambda jid: submit(destination, config, jid)
                )
                return LoadResult(attempt_id, int(job.output_rows or 0), adopted)
            return await self._replace(table, job_id, config, submit, replace_partition)
        finally:
            self._loading.pop(job_id, None)

    async def load_running(self, job_id: str) -> bool:
        job_id = bigquery_job_id(job_id)
        if job_id not in self._loading:
            return False
        attempt = self._loading[job_id]
        if attempt is None:
            return True  # no job yet: the upload is bounded by the client's own timeouts
        # jobs.get: whoever creates a job is granted bigquery.jobs.get on it; one call per
        # watchdog check and unit, far below the API's per-user request rate; the client
        # retries 5xx and rate-limit answers itself (the call is idempotent).
        job = await self._call(
            f"get job {attempt}", self.client.get_job, attempt, location=self.location
        )
        return bool(job.state != "DONE")

    async def _replace(
        self,
        table: TableSpec,
        job_id: str,
        config: bigquery.LoadJobConfig,
        submit: Submit,
        day: str,
    ) -> LoadResult:
        """Replace one partition atomically: load a staging table, then one transaction that
        deletes the day's rows and inserts the staged ones. The transaction's job id is the
        unit's, so a retried unit adopts it instead of applying it twice. A schema change is
        made on the table first: the staging table's load cannot make it."""
        await self._evolve(table)
        staging = await self._staging(table, job_id)
        config.write_disposition = bigquery.WriteDisposition.WRITE_TRUNCATE
        config.time_partitioning = None
        config.clustering_fields = None
        what = f"replace partition {day} of {table.name} job {job_id}"
        staged, _, _ = await self._call(
            what,
            self._run_job,
            f"{job_id}_stage",
            lambda jid: submit(staging, config, jid),
            job_id,
        )
        _, attempt_id, adopted = await self._call(
            what, self._run_job, job_id, lambda jid: self._swap(table, staging, day, jid)
        )
        try:
            # tables.delete: bigquery.tables.delete (dataEditor); retried by the client.
            await self._call(
                f"drop {staging}", self.client.delete_table, staging, not_found_ok=True
            )
        except IngestError as exc:  # it expires by itself
            log.warning("staging table %s not dropped: %s", staging, exc)
        return LoadResult(attempt_id, int(staged.output_rows or 0), adopted)

    async def _evolve(self, table: TableSpec) -> None:
        """Make the table's pending schema change (an added NULLABLE column, a relaxed REQUIRED
        one) by patching its schema: the change a load job's schema update options make."""
        change = self._changes.get(table)
        if not change:
            return
        patched = bigquery.Table(self._ref(table.name), schema=self._schemas[table])
        # tables.patch: bigquery.tables.update and .get on the table (dataEditor on the
        # dataset). Table metadata updates are rate-limited (5 per 10 s per table); the client
        # retries 5xx and rate-limit answers. No etag: a concurrent patch to the same schema
        # is the same change, and a replay of it changes nothing.
        await self._call(
            f"change the schema of {table.name}", self.client.update_table, patched, ["schema"]
        )
        log.info("table %s: schema changed: %s", table.name, change.describe())
        self._changes.pop(table, None)

    async def _staging(self, table: TableSpec, job_id: str) -> str:
        name = staging_table_name(table, job_id)
        schema = self._schemas.get(table, table_schema(table))
        staging = bigquery.Table(self._ref(name), schema=schema)
        staging.expires = datetime.now(UTC) + STAGING_LIFETIME
        # tables.insert: bigquery.tables.create on the dataset (dataEditor); 409 means made.
        await self._call(f"create {name}", self.client.create_table, staging, exists_ok=True)
        return self._ref(name)

    def _swap(self, table: TableSpec, staging: str, day: str, job_id: str) -> Any:
        assert table.partition_field is not None
        names = ", ".join(f"`{c.name}`" for c in table.columns)
        target = f"`{self._ref(table.name)}`"
        script = (
            "BEGIN TRANSACTION;\n"
            f"DELETE FROM {target} WHERE DATE(`{table.partition_field}`) = @day;\n"
            f"INSERT INTO {target} ({names}) SELECT {names} FROM `{staging}`;\n"
            "COMMIT TRANSACTION;"
        )
        config = bigquery.QueryJobConfig(
            query_parameters=[bigquery.ScalarQueryParameter("day", "DATE", day)]
        )
        # jobs.insert (query): bigquery.jobs.create, tables.getData/updateData (dataEditor).
        # job_retry=None: a failed script is retried under the next id of the sequence.
        return self.client.query(
            script, job_config=config, job_id=job_id, location=self.location, job_retry=None
        )

    def _ref(self, name: str) -> str:
        return f"{self.client.project}.{name}"

    def _run_job(
        self, base_id: str, submit: Callable[[str], Any], unit_job: str | None = None
    ) -> tuple[Any, str, bool]:
        """Runs in a thread: submit (or adopt) the unit's job; skip over failed attempts.

        Returns the finished job, the id it ran under and whether it was adopted. The job
        awaited is noted under ``unit_job`` (default ``base_id``) for ``load_running``.
        """
        for attempt in range(MAX_JOB_ATTEMPTS):
            job_id = base_id if attempt == 0 else f"{base_id}_r{attempt}"
            try:
                job, adopted = submit(job_id), False
            except gexc.Conflict:
                # The job id exists: an earlier attempt submitted it. Wait for it and adopt it.
                # jobs.get on one's own job needs only bigquery.jobs.create; retried.
                job, adopted = self.client.get_job(job_id, location=self.location), True
            if (unit_job or base_id) in self._loading:  # not after a cancelled load ended
                self._loading[unit_job or base_id] = job.job_id
            try:
                job.result(timeout=JOB_TIMEOUT_SECONDS)
            except gexc.GoogleAPICallError:
                if adopted and job.state == "DONE" and job.error_result:
                    continue  # an earlier attempt failed and changed nothing: try the next id
                raise
            return job, job_id, adopted
        raise PermanentError(f"{base_id}: {MAX_JOB_ATTEMPTS} attempts all failed")

    async def prepare_table(self, table: TableSpec) -> None:
        """The dataset and the table ready for rows: the Write API path writes into them."""
        await self._ensure_dataset(table.dataset)
        await self._ensure_table(table)

    async def _ensure_dataset(self, dataset: str) -> None:
        """Get the dataset, create it only when missing. ``create_dataset(exists_ok=True)``
        would not do: BigQuery checks ``bigquery.datasets.create`` on the project before it
        looks whether the dataset exists, and the runner has no such right (the deploy plan
        creates the datasets and grants dataEditor on each)."""
        if dataset in self._datasets:
            return
        ref = f"{self.client.project}.{dataset}"
        try:
            # datasets.get: bigquery.datasets.get on the dataset (dataEditor); the METADATA
            # view spares bigquery.datasets.getIamPolicy. The client retries 5xx/rate limits.
            await self._call(
                f"get dataset {dataset}",
                self.client.get_dataset,
                ref,
                dataset_view=DatasetView.METADATA,
            )
        except NotFoundError:
            wanted = bigquery.Dataset(ref)
            wanted.location = self.location
            # datasets.insert: bigquery.datasets.create on the project, which only a deployment
            # without the plan's datasets needs. 409 (made meanwhile) counts as done.
            await self._call(
                f"create dataset {dataset}", self.client.create_dataset, wanted, exists_ok=True
            )
        self._datasets.add(dataset)

    async def _ensure_table(self, table: TableSpec) -> None:
        """Create the table from the schema (with its partitioning and clustering) when missing;
        when the schema gained a NULLABLE column or relaxed a REQUIRED one, the next load makes
        the change (see service/schema_changes.py); anything else differing is refused."""
        if table in self._tables:
            return
        wanted = bigquery.Table(f"{self.client.project}.{table.name}", schema=table_schema(table))
        if table.partition_field:
            wanted.time_partitioning = bigquery.TimePartitioning(field=table.partition_field)
        if table.clustering:
            wanted.clustering_fields = list(table.clustering)
        # tables.insert, then tables.get on 409: bigquery.tables.create/get on the dataset
        # (dataEditor). Table metadata updates are rate-limited (5 per 10 s per table).
        found = await self._call(
            f"create table {table.name}", self.client.create_table, wanted, exists_ok=True
        )
        have = {f.name: (spelled(f), (f.mode or "NULLABLE").upper()) for f in found.schema}
        change = plan_change(table, have, spelled_column)
        # Loads send the table's own column order (added columns come last in BigQuery).
        self._schemas[table] = evolved(list(found.schema), change)
        if change:
            self._changes[table] = change
            log.info(
                "table %s: the next load changes its schema: %s", table.name, change.describe()
            )
        self._tables.add(table)

    async def count_rows(self, table: str) -> int:
        sql = f"SELECT COUNT(*) AS n FROM `{self.client.project}.{table}`"

        def run() -> int:
            # jobs.insert + jobs.getQueryResults: bigquery.jobs.create, tables.getData.
            rows = list(self.client.query(sql, location=self.location).result())
            return int(rows[0]["n"])

        count: int = await self._call(f"count {table}", run)
        return count

    async def tables(self) -> list[tuple[str, int]]:
        def names() -> list[str]:
            found = []
            # datasets.list / tables.list: the datasets the caller may get (dataEditor on
            # each), no project-level right; reads, retried by the client.
            for dataset in self.client.list_datasets():
                for table in self.client.list_tables(dataset.dataset_id):
                    found.append(f"{dataset.dataset_id}.{table.table_id}")
            return sorted(found)

        listed: list[str] = await self._call("list tables", names)
        return [(name, await self.count_rows(name)) for name in listed]

    async def peek(self, table: str, limit: int, where: Sequence[RowFilter] = ()) -> Rows:
        if not TABLE_NAME.fullmatch(table):
            raise PermanentError(f"{table!r} is not DATASET.TABLE")

        def run() -> Rows:
            # tables.get (bigquery.tables.get): the schema that checks the filters' columns.
            found = self.client.get_table(self._ref(table))
            names = tuple(f.name for f in found.schema)
            if not where:
                # tabledata.list (bigquery.tables.getData): free, scans nothing; retried by
                # the client. https://cloud.google.com/bigquery/docs/samples/bigquery-browse-table
                got = self.client.list_rows(found, max_results=limit)
            else:
                sql, config = peek_query(found, where, limit)
                # jobs.insert + getQueryResults (bigquery.jobs.create, tables.getData): a query
                # bills the columns it scans, so maximum_bytes_billed caps what one peek may
                # cost; values are query parameters, never SQL text
                # (https://cloud.google.com/bigquery/docs/parameterized-queries).
                got = self.client.query(sql, job_config=config, location=self.location).result()
            return Rows(names, tuple(tuple(row.values()) for row in got))

        rows: Rows = await self._call(f"peek {table}", run)
        return rows

    async def ping(self) -> None:
        # datasets.list: lists what dataset-level grants allow; needs nothing on the project.
        await self._call("ping bigquery", lambda: list(self.client.list_datasets(max_results=1)))

    async def close(self) -> None:
        self.client.close()
