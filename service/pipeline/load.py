"""load: spool validated batches to Parquet, load them once; keep bad rows in the quarantine.

The job id comes from the unit and the pipeline's version, so a retried load (a redelivery after
a crash) is adopted by the warehouse instead of inserting the rows again. A pipeline whose rows
need no transform can skip the service entirely: the warehouse reads the ``gs://`` URI itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

from service.errors import IngestError
from service.models import LoadResult, ObjectRef, TableSpec, UriSource
from service.pipeline.config import DEFAULT_QUARANTINE_PREFIX, Pipeline
from service.pipeline.context import BadRow, UnitContext
from service.ports import GenerationCopier, ObjectStore, UriLoader, Warehouse

log = logging.getLogger(__name__)

# BigQuery's names for the formats it can load from a gs:// URI itself.
NATIVE_FORMATS = {"csv": "CSV", "ndjson": "NEWLINE_DELIMITED_JSON", "parquet": "PARQUET"}
# Encodings BigQuery reads in CSV files, by the names Python gives them.
BIGQUERY_ENCODINGS = {"utf-8": "UTF-8", "utf8": "UTF-8", "latin-1": "ISO-8859-1"}


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


async def load(
    warehouse: Warehouse, ctx: UnitContext, path: Path, table: TableSpec, day: date | None
) -> LoadResult:
    partition = day.isoformat() if day is not None else None
    return await warehouse.load_parquet(table, path, ctx.job_id, replace_partition=partition)


# ---- the gs:// fast path --------------------------------------------------------------------


def uri_source(ctx: UnitContext, warehouse: Warehouse) -> UriSource | None:
    """How the warehouse can read this unit's object itself, or None when the service must.

    Only for rows that need no transform (no lineage, renames, computed columns), in a format
    BigQuery reads natively, uncompressed, with options it can express. The CSV header is
    checked separately (BigQuery maps CSV columns by position).
    """
    p = ctx.pipeline
    if not isinstance(warehouse, UriLoader) or p.needs_transform or _compressed(ctx):
        return None
    if p.write_mode == "replace_partition" and p.partition_date != "path":
        return None
    uri = ctx.object.ref.uri
    if p.format != "csv":
        return UriSource(uri, NATIVE_FORMATS[p.format])
    return _csv_source(p, uri)


def _csv_source(p: Pipeline, uri: str) -> UriSource | None:
    opts = p.csv
    encoding = BIGQUERY_ENCODINGS.get(opts.encoding.lower())
    markers = [m for m in opts.null_values if m != ""]
    if encoding is None or len(markers) > 1 or not opts.quote_char:
        return None
    return UriSource(
        uri,
        "CSV",
        field_delimiter=opts.delimiter,
        quote_character=opts.quote_char,
        skip_leading_rows=opts.skip_rows + (1 if opts.header else 0),
        encoding=encoding,
        null_marker=markers[0] if markers else None,
        allow_quoted_newlines=opts.allow_quoted_newlines,
    )


def _compressed(ctx: UnitContext) -> bool:
    info = ctx.object
    if ctx.pipeline.compression != "auto":
        return ctx.pipeline.compression == "gzip"
    return info.ref.name.endswith(".gz") or (info.content_encoding or "").lower() == "gzip"


async def load_uri(
    warehouse: UriLoader, ctx: UnitContext, source: UriSource, day: date | None
) -> LoadResult:
    partition = day.isoformat() if day is not None else None
    return await warehouse.load_uri(
        ctx.pipeline.output_table, source, ctx.job_id, replace_partition=partition
    )


async def load_generation(
    store: GenerationCopier,
    warehouse: UriLoader,
    ctx: UnitContext,
    source: UriSource,
    day: date | None,
) -> LoadResult:
    """Load exactly the event's generation: the warehouse reads a server-side copy of it (the
    live object may be overwritten meanwhile), which is deleted afterwards."""
    staged = await store.copy_generation(ctx.object.ref, staging_ref(ctx))
    try:
        return await load_uri(warehouse, ctx, replace(source, uri=staged.uri), day)
    finally:
        try:
            await store.delete(staged)
        except IngestError as exc:  # a leftover copy costs storage, not correctness
            log.warning("unit %s: staged copy %s not deleted: %s", ctx.key, staged.uri, exc)


# ---- the quarantine -------------------------------------------------------------------------


@dataclass(frozen=True)
class Quarantine:
    uri: str
    rows: int


def quarantine_ref(ctx: UnitContext) -> ObjectRef:
    bucket, prefix = _quarantine_place(ctx)
    ref = ctx.object.ref
    return ObjectRef(bucket, f"{prefix}{ctx.pipeline.name}/{ref.name}#{ref.generation}.jsonl")


def staging_ref(ctx: UnitContext) -> ObjectRef:
    """Where the fast path copies the event's generation: under the quarantine prefix, the one
    place the service may write (and delete) objects."""
    bucket, prefix = _quarantine_place(ctx)
    ref = ctx.object.ref
    return ObjectRef(bucket, f"{prefix}_staging/{ctx.pipeline.name}/{ref.generation}/{ref.name}")


def _quarantine_place(ctx: UnitContext) -> tuple[str, str]:
    policy = ctx.pipeline.bad_rows.quarantine
    if policy:
        bucket, _, prefix = policy.removeprefix("gs://").partition("/")
    else:
        bucket, prefix = ctx.object.ref.bucket, DEFAULT_QUARANTINE_PREFIX
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


class QuarantineSpool:
    """Bad rows of one unit, kept on disk as JSONL until the unit ends (memory stays flat)."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.count = 0

    def add(self, bad: list[BadRow]) -> None:
        """Called from a worker thread with one batch's bad rows."""
        if not bad:
            return
        lines = [
            json.dumps({"row": b.row, "reason": b.reason, "raw": b.raw}, ensure_ascii=False)
            for b in bad
        ]
        self._file.write(("\n".join(lines) + "\n").encode("utf-8"))
        self.count += len(bad)

    async def publish(
        self, store: ObjectStore, ctx: UnitContext, reason: str | None = None
    ) -> Quarantine | None:
        """One JSONL object per unit: each bad row (number, raw content, reason), then why the
        file was rejected, if it was."""
        if not self.count and reason is None:
            return None
        if reason is not None:
            line = {"row": None, "reason": reason, "raw": None}
            self._file.write((json.dumps(line) + "\n").encode("utf-8"))
        self._file.seek(0)
        data = await asyncio.to_thread(self._file.read)
        ref = await store.write(quarantine_ref(ctx), data, "application/x-ndjson")
        return Quarantine(ref.uri, self.count)

    def close(self) -> None:
        self._file.close()
