"""The embedded warehouse: DuckDB, with loads made idempotent by a job table.

A load and the record of its job id commit in one transaction, so a retried load with the same
job id adopts the first result instead of inserting twice, as BigQuery's job ids do. A schema
that gained a NULLABLE column or relaxed a REQUIRED one is applied to the table in the same
transaction (``ALTER TABLE``; see service/schema_changes.py).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import duckdb

from service.errors import PermanentError, TransientError
from service.models import Column, LoadResult, TableSpec
from service.schema_changes import plan_change

log = logging.getLogger(__name__)
T = TypeVar("T")

# BigQuery's scalar column types (canonical names) and the DuckDB types that hold the same
# values; a RECORD is a STRUCT of its fields, a REPEATED column a LIST (``duckdb_type``).
DUCKDB_TYPES = {
    "STRING": "VARCHAR",
    "INTEGER": "BIGINT",
    "FLOAT": "DOUBLE",
    "NUMERIC": "DECIMAL(38, 9)",
    "BIGNUMERIC": "DOUBLE",  # DuckDB decimals end at 38 digits: approximate here
    "BOOLEAN": "BOOLEAN",
    "TIMESTAMP": "TIMESTAMPTZ",
    "DATE": "DATE",
    "TIME": "TIME",
    "DATETIME": "TIMESTAMP",
    "BYTES": "BLOB",
    "JSON": "JSON",
    "GEOGRAPHY": "VARCHAR",  # WKT or GeoJSON text, as loaded (the spatial extension is optional)
}

JOBS_DDL = """
CREATE SCHEMA IF NOT EXISTS _ingest;
CREATE TABLE IF NOT EXISTS _ingest.load_jobs (
    job_id VARCHAR PRIMARY KEY,
    table_name VARCHAR NOT NULL,
    rows_loaded BIGINT NOT NULL,
    loaded_at TIMESTAMPTZ DEFAULT current_timestamp
);
"""


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def qualified(table: str) -> str:
    dataset, name = table.split(".", 1)
    return f"{quote(dataset)}.{quote(name)}"


def duckdb_type(column: Column) -> str:
    if column.type == "RECORD":
        kind = f"STRUCT({', '.join(f'{quote(f.name)} {duckdb_type(f)}' for f in column.fields)})"
    else:
        kind = DUCKDB_TYPES[column.type]
    return f"{kind}[]" if column.repeated else kind


def _mode(kind: str, nullable: bool) -> str:
    if kind.endswith("[]"):
        return "REPEATED"
    return "NULLABLE" if nullable else "REQUIRED"


class DuckDbWarehouse:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = duckdb.connect(str(path))
        self._conn.execute("SET TimeZone = 'UTC'")
        self._conn.execute(JOBS_DDL)
        # DuckDB connections are not safe to share between threads at once.
        self._lock = threading.Lock()
        self._loading: set[str] = set()  # job ids whose load runs (or waits for the lock)

    async def _run(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        def call() -> T:
            with self._lock:
                return fn(self._conn)

        try:
            return await asyncio.to_thread(call)
        except duckdb.IOException as exc:
            raise TransientError(f"duckdb: {exc}") from exc
        except duckdb.Error as exc:
            raise PermanentError(f"duckdb: {exc}") from exc

    async def load_parquet(
        self, table: TableSpec, path: Path, job_id: str, *, replace_partition: str | None = None
    ) -> LoadResult:
        def op(conn: duckdb.DuckDBPyConnection) -> LoadResult:
            conn.execute("BEGIN TRANSACTION")
            try:
                result = self._load_in_transaction(conn, table, path, job_id, replace_partition)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        self._loading.add(job_id)
        try:
            return await self._run(op)
        finally:
            self._loading.discard(job_id)

    async def load_running(self, job_id: str) -> bool:
        # In process: a load runs while its call does (a local file cannot hang on a network).
        return job_id in self._loading

    def _load_in_transaction(
        self,
        conn: duckdb.DuckDBPyConnection,
        table: TableSpec,
        path: Path,
        job_id: str,
        replace_partition: str | None,
    ) -> LoadResult:
        done = conn.execute(
            "SELECT rows_loaded FROM _ingest.load_jobs WHERE job_id = ?", [job_id]
        ).fetchone()
        if done is not None:
            return LoadResult(job_id, int(done[0]), adopted=True)
        self._ensure_table(conn, table)
        target = qualified(table.name)
        if replace_partition is not None and table.partition_field is not None:
            conn.execute(
                f"DELETE FROM {target} WHERE CAST({quote(table.partition_field)} AS DATE) = ?",
                [replace_partition],
            )
        names = ", ".join(quote(c.name) for c in table.columns)
        inserted = conn.execute(
            f"INSERT INTO {target} ({names}) SELECT {names} FROM read_parquet(?)", [str(path)]
        ).fetchone()
        rows = int(inserted[0]) if inserted else 0
        conn.execute(
            "INSERT INTO _ingest.load_jobs (job_id, table_name, rows_loaded) VALUES (?, ?, ?)",
            [job_id, table.name, rows],
        )
        return LoadResult(job_id, rows)

    @staticmethod
    def _count(conn: duckdb.DuckDBPyConnection, target: str) -> int:
        row = conn.execute(f"SELECT count(*) FROM {target}").fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _ensure_table(conn: duckdb.DuckDBPyConnection, table: TableSpec) -> None:
        """Create the table from the schema when missing; evolve it when the schema gained a
        NULLABLE column or relaxed a REQUIRED one; refuse any other difference."""
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(table.dataset)}")
        existing = conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [table.dataset, table.table],
        ).fetchall()
        target = qualified(table.name)
        if not existing:
            columns = ", ".join(
                f"{quote(c.name)} {duckdb_type(c)}{' NOT NULL' if c.required else ''}"
                for c in table.columns
            )
            conn.execute(f"CREATE TABLE {target} ({columns})")
            return
        have = {name: (kind, _mode(kind, nullable == "YES")) for name, kind, nullable in existing}

        def spell(column: Column) -> str:
            # DuckDB's own spelling of the type, as information_schema reports it.
            found = conn.execute(f"SELECT typeof(CAST(NULL AS {duckdb_type(column)}))").fetchone()
            return str(found[0]) if found else ""

        change = plan_change(table, have, spell)
        for column in change.added:
            conn.execute(
                f"ALTER TABLE {target} ADD COLUMN {quote(column.name)} {duckdb_type(column)}"
            )
        for name in change.relaxed:
            conn.execute(f"ALTER TABLE {target} ALTER COLUMN {quote(name)} DROP NOT NULL")
        if change:
            log.info("table %s: schema changed by a load: %s", table.name, change.describe())

    async def count_rows(self, table: str) -> int:
        return await self._run(lambda conn: self._count(conn, qualified(table)))

    async def tables(self) -> list[tuple[str, int]]:
        def op(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
            rows = conn.execute(
                "SELECT schema_name, table_name FROM duckdb_tables()"
                " WHERE schema_name <> '_ingest' ORDER BY 1, 2"
            ).fetchall()
            names = [f"{schema}.{name}" for schema, name in rows]
            return [(n, self._count(conn, qualified(n))) for n in names]

        return await self._run(op)

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        await self._run(lambda conn: conn.close())
