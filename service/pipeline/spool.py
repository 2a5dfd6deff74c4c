"""The Parquet spool: validated batches written to a temporary Parquet file, the load's input."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq


class ParquetSpool:
    """A temporary Parquet file written batch by batch (in a worker thread)."""

    def __init__(self, schema: pa.Schema, directory: Path | None = None) -> None:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in __aexit__
            prefix="ingest-", suffix=".parquet", dir=directory, delete=False
        )
        handle.close()
        self.path = Path(handle.name)
        self.rows = 0
        # Dictionary encoding costs twice the CPU and saves little once snappy has run; only
        # columns that are dictionaries already (the lineage values) are written as such.
        dictionaries = [f.name for f in schema if pa.types.is_dictionary(f.type)]
        self._writer = pq.ParquetWriter(
            self.path,
            schema,
            compression="snappy",
            use_dictionary=dictionaries or False,
            write_statistics=False,
        )

    async def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            await asyncio.to_thread(self._writer.write_batch, batch)
            self.rows += batch.num_rows

    async def finish(self) -> Path:
        await asyncio.to_thread(self._writer.close)
        return self.path

    async def __aenter__(self) -> ParquetSpool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._writer.is_open:
            self._writer.close()
        self.path.unlink(missing_ok=True)
