"""load: spool validated batches to a Parquet file, then load it through the warehouse once.

The job id comes from the unit and the pipeline's version, so a retried load (a redelivery after
a crash) is adopted by the warehouse instead of inserting the rows again.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

from service.models import LoadResult, ObjectRef, TableSpec
from service.pipeline.context import BadRow, UnitContext
from service.ports import ObjectStore, Warehouse


class ParquetSpool:
    """A temporary Parquet file written batch by batch (in a worker thread)."""

    def __init__(self, schema: pa.Schema, directory: Path | None = None) -> None:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in close()
            prefix="ingest-", suffix=".parquet", dir=directory, delete=False
        )
        handle.close()
        self.path = Path(handle.name)
        self.rows = 0
        self._writer = pq.ParquetWriter(self.path, schema, compression="snappy")

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


def replace_partition_of(ctx: UnitContext) -> str | None:
    """The partition a replace_partition pipeline overwrites: the date found in the path."""
    if ctx.pipeline.write_mode != "replace_partition":
        return None
    match = re.search(r"(\d{4}-\d{2}-\d{2})", ctx.object.ref.name)
    return match.group(1) if match else None


async def load(warehouse: Warehouse, ctx: UnitContext, path: Path, table: TableSpec) -> LoadResult:
    return await warehouse.load_parquet(
        table, path, ctx.job_id, replace_partition=replace_partition_of(ctx)
    )


@dataclass(frozen=True)
class Quarantine:
    uri: str
    rows: int


def quarantine_ref(ctx: UnitContext) -> ObjectRef:
    policy = ctx.pipeline.bad_rows.quarantine
    ref = ctx.object.ref
    if policy:
        bucket, _, prefix = policy.removeprefix("gs://").partition("/")
    else:
        bucket, prefix = ref.bucket, "_quarantine/"
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return ObjectRef(bucket, f"{prefix}{ctx.pipeline.name}/{ref.name}#{ref.generation}.jsonl")


async def write_quarantine(
    store: ObjectStore, ctx: UnitContext, bad: list[BadRow], reason: str | None = None
) -> Quarantine | None:
    """One JSONL object per unit: each bad row with its number, raw content and reason."""
    if not bad and reason is None:
        return None
    lines = [
        json.dumps({"row": b.row, "reason": b.reason, "raw": b.raw}, ensure_ascii=False)
        for b in bad
    ]
    if reason is not None:
        lines.append(json.dumps({"row": None, "reason": reason, "raw": None}))
    data = ("\n".join(lines) + "\n").encode("utf-8")
    ref = await store.write(quarantine_ref(ctx), data, "application/x-ndjson")
    return Quarantine(ref.uri, len(bad))
