"""The Parquet spool: validated batches written to a temporary Parquet file, the load's input.

Its bytes are taken from the instance's spool budget (spool_budget.py) as the file grows, after
each batch is written: what a batch becomes on disk is known only then (snappy-compressed columns
are a fraction of the batch in memory, and reserving that would refuse files that fit). So the
budget can be passed by one batch per unit in flight before the unit fails.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

from service.pipeline.spool_budget import SpoolAccount

WHAT = "the validated rows"


class ParquetSpool:
    """A temporary Parquet file written batch by batch (in a worker thread)."""

    def __init__(
        self, schema: pa.Schema, directory: Path | None = None, room: SpoolAccount | None = None
    ) -> None:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in __aexit__
            prefix="ingest-", suffix=".parquet", dir=directory, delete=False
        )
        handle.close()
        self.path = Path(handle.name)
        self.rows = 0
        self.room = room
        self.size = 0  # bytes of the file the account holds
        # Dictionary encoding costs twice the CPU and saves little once snappy has run; only
        # columns that are dictionaries already (the lineage values) are written as such.
        dictionaries = [f.name for f in schema if pa.types.is_dictionary(f.type)]
        # A cancelled unit leaves its write running in the worker thread: closing the writer
        # under it would free what pyarrow is writing (a segfault). Every writer call holds this.
        self._lock = threading.Lock()
        self._writer = pq.ParquetWriter(
            self.path,
            schema,
            compression="snappy",
            use_dictionary=dictionaries or False,
            write_statistics=False,
        )

    async def write(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        await asyncio.to_thread(self._write_batch, batch)
        self.rows += batch.num_rows
        grown = self.path.stat().st_size - self.size
        self.size += grown
        if self.room is not None:
            self.room.take(grown, WHAT)

    async def finish(self) -> Path:
        await asyncio.to_thread(self._close)
        return self.path

    def _write_batch(self, batch: pa.RecordBatch) -> None:
        with self._lock:
            if self._writer.is_open:
                self._writer.write_batch(batch)

    def _close(self) -> None:
        with self._lock:
            if self._writer.is_open:
                self._writer.close()

    async def __aenter__(self) -> ParquetSpool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            # In a thread: a write still running (its unit cancelled) finishes first.
            await asyncio.to_thread(self._close)
        finally:
            self.path.unlink(missing_ok=True)
