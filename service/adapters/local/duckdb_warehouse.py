"""The embedded warehouse: DuckDB, with loads made idempotent by a job table.

A load and the record of its job id commit in one transaction, so a retried load with the same
job id adopts the first result instead of inserting twice, as BigQuery's job ids do.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import duckdb

from service.errors import NotFoundError, PermanentError, TransientError
from service.models import LoadResult, RowFilter, Rows, TableSpec
from service.peek import checked_filters

T = TypeVar("T")

# BigQuery column types (canonical names) and the DuckDB types that hold the same values.
DUCKDB_TYPES = {
    "STRING": "VARCHAR",
    "INTEGER": "BIGINT",
    "FLOAT": "DOUBLE",
    "NUMERIC": "DECIMAL(38, 9)",
    "BOOLEAN": "BOOLEAN",
    "TIMESTAMP": "TIMESTAMPTZ",
    "DATE": "DATE",
    "DATETIME": "TIMESTAMP",
    "BYTES": "BLOB",
}

# DuckDB's information_schema spelling of the types above, where it differs.
SCHEMA_SPELLING = {"DECIMAL(38, 9)": "DECIMAL(38,9)", "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}

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


def schema_difference(table: TableSpec, existing: list[tuple[str, str, str]]) -> str | None:
    """What differs between the schema and a table's (name, type, nullable) columns."""
    have = {name: (kind, nullable == "YES") for name, kind, nullable in existing}
    for c in table.columns:
        if c.name not in have:
            return f"column {c.name!r} is missing from the table"
        wanted = DUCKDB_TYPES[c.type]
        kind, nullable = have[c.name]
        if kind != SCHEMA_SPELLING.get(wanted, wanted) or nullable == c.required:
            mode = "NULL" if nullable else "NOT NULL"
            return f"column {c.name!r} is {kind} {mode} in the table, {c.type} {c.mode} here"
    extra = sorted(set(have) - {c.name for c in table.columns})
    return f"the table has columns the schema lacks: {', '.join(extra)}" if extra else None


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
        """Create the table from the schema when missing; refuse one with another schema."""
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(table.dataset)}")
        existing = conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [table.dataset, table.table],
        ).fetchall()
        if existing:
            problem = schema_difference(table, existing)
            if problem:
                raise PermanentError(f"table {table.name} exists with another schema: {problem}")
            return
        columns = ", ".join(
            f"{quote(c.name)} {DUCKDB_TYPES[c.type]}{' NOT NULL' if c.required else ''}"
            for c in table.columns
        )
        conn.execute(f"CREATE TABLE {qualified(table.name)} ({columns})")

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

    async def peek(self, table: str, limit: int, where: Sequence[RowFilter] = ()) -> Rows:
        """Columns come from the table's own schema and are quoted; values are parameters."""

        def op(conn: duckdb.DuckDBPyConnection) -> Rows:
            dataset, _, name = table.partition(".")
            types = dict(
                conn.execute(
                    "SELECT column_name, data_type FROM information_schema.columns"
                    " WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                    [dataset, name],
                ).fetchall()
            )
            if not name or not types or dataset == "_ingest":
                raise NotFoundError(f"no table {table} in the warehouse (ingest tables lists them)")
            conditions = [
                f"{quote(f.column)} {f.operator} CAST(? AS {types[f.column]})"
                for f in checked_filters(table, where, types)
            ]
            sql = f"SELECT * FROM {qualified(table)}"
            if conditions:
                sql += " WHERE " + " AND ".join(conditions)
            params = [*(f.value for f in where), limit]
            try:
                # Through Arrow: Python values of TIMESTAMPTZ columns without pytz.
                found = conn.sql(sql + " LIMIT ?", params=params).to_arrow_table()
            except duckdb.ConversionException as exc:
                raise PermanentError(str(exc).splitlines()[0]) from exc
            rows = tuple(tuple(r.values()) for r in found.to_pylist())
            return Rows(tuple(found.column_names), rows)

        return await self._run(op)

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        await self._run(lambda conn: conn.close())
