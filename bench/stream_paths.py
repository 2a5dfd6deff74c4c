"""bench/pipeline.py's pieces for the Write API path and its honest baselines.

- ``SendOnly``: a StreamWriter that builds every AppendRows request exactly as the BigQuery
  adapter hands it to gRPC (Arrow IPC in the request's wire form), then drops it: the network
  excluded.
- ``streaming_reader``: the physical limit of parsing, pyarrow's streaming CSV reader with the
  same explicit column types, one thread.
- ``duckdb_ctas``: DuckDB's own ``CREATE TABLE AS SELECT * FROM read_csv(...)`` with explicit
  types: the tool a user would pick instead of the embedded service.
- ``embedded_unit``: one unit into the embedded DuckDB through the stream path (rows inserted
  as the file is read, committed at the end).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from service.adapters.gcp.append_wire import append_rows_bytes
from service.adapters.local.directory_store import DirectoryObjectStore
from service.adapters.local.duckdb_arrow import DuckDbArrowWriter
from service.adapters.local.duckdb_warehouse import DUCKDB_TYPES, DuckDbWarehouse
from service.models import (
    EventMeta,
    ObjectRef,
    StreamPhase,
    StreamState,
    TableSpec,
    UnitKey,
    UnitResult,
)
from service.pipeline.definition import Pipeline
from service.pipeline.runner import Runner
from service.ports import StreamWriter, Warehouse

# The bench's arrow type of each BigQuery type, for the streaming reader's explicit types.
ARROW_TYPES = {
    "INTEGER": pa.int64(),
    "FLOAT": pa.float64(),
    "STRING": pa.string(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}


class SendOnly:
    """Every request built and serialized as for the wire; nothing sent."""

    def __init__(self) -> None:
        self.bytes_sent = 0
        self.rows = 0
        self._first = True
        self._names = itertools.count(1)

    async def create_stream(self, table: TableSpec) -> str:
        self._first = True
        return f"projects/p/datasets/d/tables/t/streams/{next(self._names)}"

    async def append(self, stream: str, batch: pa.RecordBatch, offset: int) -> bool:
        request = append_rows_bytes(stream, batch, offset, first=self._first)
        self._first = False
        self.bytes_sent += len(request)
        self.rows += batch.num_rows
        return True

    async def finalize(self, stream: str) -> int:
        return self.rows

    async def commit(self, table: TableSpec, streams: Sequence[str]) -> bool:
        return True

    async def describe(self, stream: str) -> StreamState:
        return StreamState(stream, StreamPhase.COMMITTED, self.rows)

    async def abandon(self, stream: str) -> None:
        return None

    async def close(self) -> None:
        return None


class NoteBook:
    """A StreamJournal with no ledger behind it (the ledger's cost is bench/ledger.py's)."""

    phase: str | None = None
    streams: tuple[str, ...] = ()
    pending: UnitResult | None = None

    async def writing(self, streams: tuple[str, ...]) -> None:
        self.phase, self.streams = "writing", streams

    async def committing(self, streams: tuple[str, ...], result: UnitResult) -> None:
        self.phase, self.streams = "committing", streams

    async def restart(self) -> None:
        self.phase, self.streams = None, ()


async def run_stream(
    path: Path, p: Pipeline, warehouse: Warehouse, writer: StreamWriter, chunk_bytes: int
) -> UnitResult:
    """One unit of ``p`` on the Write API path, whatever load path ``p`` names."""
    p = replace(p, load="stream")
    store = DirectoryObjectStore(path.parent.parent)
    info = await store.stat(ObjectRef(p.bucket, path.name))
    runner = Runner(store, warehouse, chunk_bytes=chunk_bytes, streams=writer)
    assert info.ref.generation is not None
    key = UnitKey(p.name, p.bucket, path.name, info.ref.generation)
    ctx = runner.context(key, p, info, EventMeta("bench", "bench", "bench"), journal=NoteBook())
    return await runner.run(ctx)


def embedded_fresh(path: Path, p: Pipeline, db: Path, chunk_bytes: int) -> int:
    """``embedded_unit`` into a new database file."""
    db.unlink(missing_ok=True)
    return asyncio.run(embedded_unit(path, p, db, chunk_bytes))


async def embedded_unit(path: Path, p: Pipeline, db: Path, chunk_bytes: int) -> int:
    """One unit into the embedded DuckDB at ``db`` through the stream path; rows committed."""
    warehouse = DuckDbWarehouse(db)
    try:
        result = await run_stream(path, p, warehouse, DuckDbArrowWriter(warehouse), chunk_bytes)
        return result.rows_loaded
    finally:
        await warehouse.close()


def streaming_reader(path: Path, p: Pipeline, naive: frozenset[str] = frozenset()) -> int:
    """pyarrow's streaming CSV reader, explicit column types, one thread: parsing's limit.
    ``naive``: TIMESTAMP columns written without a zone (pyarrow parses them zone-less)."""
    types = {
        c.name: pa.timestamp("us") if c.name in naive else ARROW_TYPES[c.type]
        for c in p.table.columns
    }
    options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)
    rows = 0
    with pacsv.open_csv(
        path, read_options=pacsv.ReadOptions(use_threads=False), convert_options=options
    ) as reader:
        for batch in reader:
            rows += batch.num_rows
    return rows


def duckdb_ctas(path: Path, p: Pipeline, db: Path) -> int:
    """DuckDB's own CSV load into a table, with the same explicit types."""
    db.unlink(missing_ok=True)
    conn = duckdb.connect(str(db))
    try:
        columns = ", ".join(f"'{c.name}': '{DUCKDB_TYPES[c.type]}'" for c in p.table.columns)
        conn.execute(
            f"CREATE TABLE t AS SELECT * FROM read_csv(?, header = true, columns = {{{columns}}})",
            [str(path)],
        )
        row = conn.execute("SELECT count(*) FROM t").fetchone()
        return int(row[0]) if row else 0
    finally:
        conn.close()
