"""The gs:// fast path: the warehouse reads the unit's object itself, no bytes through us.

Only for rows that need no transform (no lineage, renames, computed columns), in a format
BigQuery reads natively, uncompressed, with options it can express, from the generation the
event named (a server-side copy of that generation is loaded, as a load URI cannot name a
generation), and (CSV) with a header that lists the schema in order. Anything else, or a load
the warehouse refuses as permanent, goes the streaming way, which says exactly which rows are bad.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from service.errors import IngestError, PermanentError
from service.models import LoadResult, ObjectRef, UnitResult, UriSource
from service.pipeline.context import UnitContext
from service.pipeline.csv_head import header_names
from service.pipeline.definition import Pipeline
from service.ports import GenerationCopier, ObjectStore, UriLoad, UriLoader, Warehouse

log = logging.getLogger(__name__)

# BigQuery's names for the formats it can load from a gs:// URI itself.
NATIVE_FORMATS = {"csv": "CSV", "ndjson": "NEWLINE_DELIMITED_JSON", "parquet": "PARQUET"}
# Encodings BigQuery reads in CSV files, by the names Python gives them.
BIGQUERY_ENCODINGS = {"utf-8": "UTF-8", "utf8": "UTF-8", "latin-1": "ISO-8859-1"}
# How much of a CSV file is read, at most, to find its header.
HEADER_READ_BYTES = 64 * 1024
HEADER_MAX_BYTES = 1024 * 1024


async def load_direct(
    store: ObjectStore, warehouse: Warehouse, ctx: UnitContext
) -> UnitResult | None:
    """The unit loaded from its gs:// URI, or None when it must be streamed instead."""
    source = uri_source(ctx, warehouse)
    if source is None or not isinstance(warehouse, UriLoader):
        return None
    if not isinstance(store, GenerationCopier):
        return None  # a load URI cannot name the event's generation: stream it
    started = time.perf_counter()
    try:
        if ctx.pipeline.format == "csv" and not await _header_in_order(store, ctx):
            return None
        day = ctx.path_partition_day()
        partition = day.isoformat() if day is not None else None
        # Same job id as the streamed load would use: whichever runs first, the rows load once.
        with ctx.progress.probing(lambda: warehouse.load_running(ctx.job_id)):
            loaded = await _load_generation(store, warehouse, ctx, source, partition)
    except PermanentError as exc:
        # The stream path will say exactly which rows are bad (or fail the same way).
        log.warning("unit %s: direct load refused (%s); streaming instead", ctx.key, exc)
        return None
    took = {"load": round(time.perf_counter() - started, 6)}
    rows = loaded.rows_loaded
    return UnitResult(rows, rows, 0, loaded.job_id, ctx.pipeline.table.name, None, took)


async def _load_generation(
    store: GenerationCopier,
    warehouse: UriLoader,
    ctx: UnitContext,
    source: UriSource,
    partition: str | None,
) -> LoadResult:
    """Load exactly the event's generation: the warehouse reads a server-side copy of it (the
    live object may be overwritten meanwhile), which is deleted afterwards."""
    staged = await store.copy_generation(ctx.object.ref, staging_ref(ctx))
    try:
        staged_source = replace(source, uri=staged.uri)
        return await warehouse.load_uri(
            UriLoad(ctx.pipeline.output_table, staged_source, ctx.job_id, partition)
        )
    finally:
        try:
            await store.delete(staged)
        except IngestError as exc:  # a leftover copy costs storage, not correctness
            log.warning("unit %s: staged copy %s not deleted: %s", ctx.key, staged.uri, exc)


def staging_ref(ctx: UnitContext) -> ObjectRef:
    """Where the fast path copies the event's generation: under the quarantine prefix, the one
    place the service may write (and delete) objects, and never ingested by the pipeline."""
    bucket, prefix = ctx.pipeline.quarantine_location
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    ref = ctx.object.ref
    return ObjectRef(bucket, f"{prefix}_staging/{ctx.pipeline.name}/{ref.generation}/{ref.name}")


def uri_source(ctx: UnitContext, warehouse: Warehouse) -> UriSource | None:
    """How the warehouse can read this unit's object itself, or None when the service must.

    The CSV header is checked separately (BigQuery maps CSV columns by position).
    """
    p = ctx.pipeline
    if not isinstance(warehouse, UriLoader) or p.needs_transform or ctx.declared_gzip:
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


async def _header_in_order(store: ObjectStore, ctx: UnitContext) -> bool:
    """BigQuery maps CSV columns by position: the header must list the schema in order."""
    opts = ctx.pipeline.csv
    if not opts.header:
        return True
    head = b""
    reader = store.read(ctx.object.ref, HEADER_READ_BYTES)
    try:
        async for chunk in reader:
            head += chunk
            if head.count(b"\n") > opts.skip_rows or len(head) > HEADER_MAX_BYTES:
                break
    finally:
        close = getattr(reader, "aclose", None)
        if close is not None:
            await close()
    names = header_names(head + b"\n", opts)
    return names == [c.name for c in ctx.pipeline.table.columns]
