"""The embedded warehouse's Write API: Arrow batches inserted into DuckDB as the file is read.

A "stream" is one DuckDB transaction on its own cursor: every append inserts the batch into
the table inside it (no Parquet file), and the commit records the stream in
``_ingest.write_streams`` in that same transaction, so the rows and the record of their commit
become visible together, once. A rejected file's transaction is rolled back: it leaves nothing.
A process that dies mid-unit loses its open transactions, so a stream that is neither open here
nor recorded as committed is certainly uncommitted (GONE): the unit writes anew.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import duckdb
import pyarrow as pa

from service.adapters.local.duckdb_warehouse import DuckDbWarehouse, qualified, quote
from service.adapters.stream_offsets import finalize, fresh_offset, opened
from service.errors import PermanentError, TransientError
from service.models import StreamPhase, StreamState, TableSpec

T = TypeVar("T")

STREAMS_DDL = """
CREATE SCHEMA IF NOT EXISTS _ingest;
CREATE TABLE IF NOT EXISTS _ingest.write_streams (
    stream VARCHAR PRIMARY KEY,
    table_name VARCHAR NOT NULL,
    rows_committed BIGINT NOT NULL,
    committed_at TIMESTAMPTZ DEFAULT current_timestamp
);
"""


@dataclass
class _Open:
    cursor: duckdb.DuckDBPyConnection
    table: TableSpec
    rows: int = 0
    finalized: bool = False


class DuckDbArrowWriter:
    def __init__(self, warehouse: DuckDbWarehouse) -> None:
        self.warehouse = warehouse
        self._open: dict[str, _Open] = {}
        self._ids = itertools.count(1)
        self._prefix = uuid.uuid4().hex[:8]  # names never repeat across processes
        self._ready = False
        # A cancelled unit leaves its insert running in a worker thread; a rollback or close on
        # the same connection meanwhile is a use from two threads, which DuckDB does not allow.
        self._lock = threading.Lock()

    async def _in(self, cursor: duckdb.DuckDBPyConnection, fn: Callable[[], T]) -> T:
        def locked() -> T:
            with self._lock:
                return fn()

        try:
            return await asyncio.to_thread(locked)
        except duckdb.IOException as exc:
            raise TransientError(f"duckdb: {exc}") from exc
        except duckdb.Error as exc:
            raise PermanentError(f"duckdb: {exc}") from exc

    async def create_stream(self, table: TableSpec) -> str:
        def prepare(conn: duckdb.DuckDBPyConnection) -> None:
            if not self._ready:
                conn.execute(STREAMS_DDL)
            self.warehouse._ensure_table(conn, table)
            # One thread inserts each batch: the unit's other stages run beside it already,
            # and DuckDB's own workers on one batch cost hand-offs (1.49 -> 1.33 CPU-s for a
            # 100 MiB CSV, measured with bench/pipeline.py's file).
            conn.execute("SET threads = 1")

        # The stream's own connection: its transaction stays open until commit or abandon.
        cursor = await self.warehouse._held(prepare)
        self._ready = True
        name = f"{table.name}/streams/{self._prefix}-{next(self._ids)}"
        await self._in(cursor, lambda: cursor.execute("BEGIN TRANSACTION"))
        self._open[name] = _Open(cursor, table)
        return name

    async def append(self, stream: str, batch: pa.RecordBatch, offset: int) -> bool:
        s = opened(self._open, stream)
        if not fresh_offset(stream, s.finalized, s.rows, offset):
            return False
        names = ", ".join(quote(c.name) for c in s.table.columns)
        sql = f"INSERT INTO {qualified(s.table.name)} ({names}) SELECT {names} FROM incoming"

        def insert() -> None:
            # DuckDB finds ``incoming`` among this frame's locals (its replacement scan).
            # register()/unregister() would keep every batch alive until the transaction ends:
            # a 1 GiB file's unit peaked at 1.9 GiB of RSS that way, 0.45 GiB this way.
            incoming = batch  # noqa: F841 - read by the SQL above
            s.cursor.execute(sql)

        await self._in(s.cursor, insert)
        s.rows += batch.num_rows
        return True

    async def finalize(self, stream: str) -> int:
        return finalize(self._open, stream)

    async def commit(self, table: TableSpec, streams: Sequence[str]) -> bool:
        if len(streams) != 1:
            raise PermanentError("the embedded warehouse commits one stream at a time")
        (stream,) = streams
        s = self._open.get(stream)
        if s is None or not s.finalized:
            return False  # committed already, or rolled back: describe tells which
        record = "INSERT INTO _ingest.write_streams (stream, table_name, rows_committed)"

        def commit() -> None:
            s.cursor.execute(f"{record} VALUES (?, ?, ?)", [stream, table.name, s.rows])
            s.cursor.execute("COMMIT")

        try:
            await self._in(s.cursor, commit)
        finally:
            await self._close(stream)
        return True

    async def describe(self, stream: str) -> StreamState:
        def committed(conn: duckdb.DuckDBPyConnection) -> int | None:
            if not self._ready:
                conn.execute(STREAMS_DDL)
            row = conn.execute(
                "SELECT rows_committed FROM _ingest.write_streams WHERE stream = ?", [stream]
            ).fetchone()
            return int(row[0]) if row else None

        rows = await self.warehouse._run(committed)
        if rows is not None:
            return StreamState(stream, StreamPhase.COMMITTED, rows)
        s = self._open.get(stream)
        if s is None:
            return StreamState(stream, StreamPhase.GONE)
        phase = StreamPhase.FINALIZED if s.finalized else StreamPhase.PENDING
        return StreamState(stream, phase, s.rows)

    async def abandon(self, stream: str) -> None:
        s = self._open.get(stream)
        if s is None:
            return

        def rollback() -> None:
            s.cursor.execute("ROLLBACK")

        try:
            await self._in(s.cursor, rollback)
        finally:
            await self._close(stream)

    async def _close(self, stream: str) -> None:
        s = self._open.pop(stream, None)
        if s is not None:
            await self._in(s.cursor, s.cursor.close)

    async def close(self) -> None:
        for stream in list(self._open):
            await self.abandon(stream)
