"""The embedded warehouse: DuckDB, with loads made idempotent by a job table.

A load and the record of its job id commit in one transaction, so a retried load with the same
job id adopts the first result instead of inserting twice, as BigQuery's job ids do. A schema
that gained a NULLABLE column or relaxed a REQUIRED one is applied to the table in the same
transaction (``ALTER TABLE``; see service/schema_changes.py).

DuckDB lets one process at a time open a database file for writing. So that a running server
and the commands beside it (``ingest tables``, ``ingest sweep``...) share one file, the file is
opened for each load or query and closed after it; a process that finds it held by another waits
for it (up to ``lock_wait_seconds``), then fails with one line naming the holder.

Longer than 300 lines: loads, schema changes, the job table and the reads (count, tables, peek)
share the one connection discipline above.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import duckdb

from service.errors import NotFoundError, PermanentError, TransientError
from service.models import Column, LoadResult, RowFilter, Rows, TableSpec
from service.peek import checked_filters
from service.schema_changes import plan_change

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a load or query waits for another process to let go of the database file.
LOCK_WAIT_SECONDS = 30.0
# The first and the longest pause between tries to open a file another process holds.
FIRST_PAUSE_SECONDS = 0.01
LONGEST_PAUSE_SECONDS = 0.25
# DuckDB's buffer memory per open database file; what a load or a stream's transaction holds
# beyond it goes to the file (or its .tmp folder). Unbounded, one transaction inserting a
# 1 GiB CSV peaked at 1.1 GiB RSS (DuckDB keeps written blocks cached up to 80% of RAM).
# Measured with bench/pipeline.py (stream path, Arrow inserts): 64 MB, 1 GiB unit at 393 MiB;
# 128 MB, 451 MiB and a few per cent less CPU. The memory bound is the one users size for.
MEMORY_LIMIT = "64MB"
# How much of the holder's command line a message shows.
COMMAND_CHARS = 80
# DuckDB's message when another process holds the file: "... Conflicting lock is held in
# /usr/bin/python3.11 (PID 1234) ..." (the holder's program and process id).
LOCK_CONFLICT = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")

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


def lock_holder(message: str) -> str | None:
    """The process a DuckDB lock-conflict message names ("PID 1234: ingest serve"), else None."""
    found = LOCK_CONFLICT.search(message)
    if found is None:
        return None
    pid = found["pid"]
    return f"PID {pid}: {command_line(int(pid)) or found['program']}"


def command_line(pid: int) -> str | None:
    """A process's command as typed ("ingest serve --port 8080"), where /proc shows it."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    args = [a for a in raw.decode(errors="replace").split("\0") if a]
    if len(args) > 1 and Path(args[0]).name.startswith("python"):
        args = args[1:]  # the interpreter of a console script: the script says more
    if not args:
        return None
    shown = " ".join(" ".join([Path(args[0]).name, *args[1:]]).split())  # one line
    return shown if len(shown) <= COMMAND_CHARS else shown[: COMMAND_CHARS - 3] + "..."


class DuckDbWarehouse:
    def __init__(self, path: Path, *, lock_wait_seconds: float = LOCK_WAIT_SECONDS) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lock_wait_seconds = lock_wait_seconds
        # One load or query at a time in this process: each opens the file, runs, closes it.
        self._lock = threading.Lock()
        self._prepared = False  # the job table made (once per process is enough)
        self._loading: set[str] = set()  # job ids whose load runs (or waits for the lock)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """The database file, open; waits while another process holds it (bounded)."""
        deadline = time.monotonic() + self.lock_wait_seconds
        pause = FIRST_PAUSE_SECONDS
        while True:
            try:
                conn = duckdb.connect(str(self.path))
                break
            except duckdb.IOException as exc:
                holder = lock_holder(str(exc))
                left = deadline - time.monotonic()
                if holder is None:
                    raise
                if left <= 0:
                    raise TransientError(
                        f"the warehouse {self.path} is in use by another process ({holder})"
                        f" and was not free within {self.lock_wait_seconds:g} s: try again when"
                        " its load or query ends, or stop that process"
                    ) from exc
                time.sleep(min(pause, left))
                pause = min(2 * pause, LONGEST_PAUSE_SECONDS)
        try:
            conn.execute("SET TimeZone = 'UTC'")
            conn.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
            if not self._prepared:
                conn.execute(JOBS_DDL)
                self._prepared = True
        except BaseException:
            conn.close()
            raise
        return conn

    async def _run(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        def call() -> T:
            with self._lock:
                conn = self._connect()
                try:
                    return fn(conn)
                finally:
                    conn.close()  # lets other processes in between our loads and queries

        return await _translated(call)

    async def _held(
        self, fn: Callable[[duckdb.DuckDBPyConnection], None]
    ) -> duckdb.DuckDBPyConnection:
        """A connection prepared by ``fn`` and left open for the caller, who closes it: a Write
        API stream's transaction spans the unit. Other processes wait meanwhile (bounded)."""

        def call() -> duckdb.DuckDBPyConnection:
            with self._lock:
                conn = self._connect()
                try:
                    fn(conn)
                except BaseException:
                    conn.close()
                    raise
                return conn

        return await _translated(call)

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
        return None  # the file is open only while a load or query runs


async def _translated(call: Callable[[], T]) -> T:
    """``call`` in a worker thread, DuckDB's errors as the service's."""
    try:
        return await asyncio.to_thread(call)
    except duckdb.IOException as exc:
        raise TransientError(f"duckdb: {exc}") from exc
    except duckdb.Error as exc:
        raise PermanentError(f"duckdb: {exc}") from exc
