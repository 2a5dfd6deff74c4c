"""parse: bytes into Arrow record batches with pyarrow's readers; no per-row Python.

The parse stage runs in its unit's own worker thread and pulls chunks from the feed, so parsing
overlaps with the download; blocks of a file are parsed by several workers at once. CSV: see
csv_format.py. A block of NDJSON that pyarrow refuses is parsed again line by line, so a bad
line is quarantined instead of failing the file. Parquet needs random access: the stream is
spooled to a temporary file, then read one row group at a time.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from concurrent.futures import Executor
from typing import Any

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from service.errors import PermanentError
from service.pipeline.batches import ParsedBatch, in_order, one_batch
from service.pipeline.context import BadRow, RowNumbers
from service.pipeline.csv_format import csv_batches
from service.pipeline.definition import Pipeline
from service.pipeline.feed import Feed, blank, record_blocks, utf8_chunks
from service.pipeline.spool_budget import SpoolAccount

# Rows per batch read from a Parquet file.
PARQUET_BATCH_ROWS = 64 * 1024


def parse_batches(
    pipeline: Pipeline,
    feed: Feed,
    workers: Executor | None = None,
    room: SpoolAccount | None = None,
) -> Iterator[ParsedBatch]:
    """Run in a worker thread: yields batches with their row numbers, in file order.

    ``workers`` parse blocks in parallel (they only compute, never wait on anything); a Parquet
    file's spool takes its bytes from ``room``.
    """
    if pipeline.format == "csv":
        yield from csv_batches(pipeline, feed, workers)
    elif pipeline.format == "ndjson":
        yield from _ndjson_batches(pipeline, feed, workers)
    else:
        yield from _parquet_batches(pipeline, feed, room)


# ---- newline-delimited JSON ----------------------------------------------------------------


def _ndjson_batches(
    pipeline: Pipeline, feed: Feed, workers: Executor | None
) -> Iterator[ParsedBatch]:
    known = source_names(pipeline)
    blocks = record_blocks(utf8_chunks(feed.chunks(), "utf-8"), None)

    def parse(block: bytes) -> tuple[pa.RecordBatch, list[BadRow]]:
        return _json_block(block, known, pipeline.ignore_unknown_fields)

    yield from in_order(blocks, parse, feed, workers)


def source_names(pipeline: Pipeline) -> set[str]:
    """Field names a file may carry: schema columns, their names before renames, drops."""
    names = {c.name for c in pipeline.table.columns}
    for t in pipeline.transforms:
        if t.op in ("rename", "drop"):
            names.add(t.column)
    return names


def _json_block(
    block: bytes, known: set[str], ignore_unknown: bool
) -> tuple[pa.RecordBatch, list[BadRow]]:
    read = pajson.ReadOptions(use_threads=False, block_size=len(block) + 1)
    parse = pajson.ParseOptions(newlines_in_values=False, unexpected_field_behavior="infer")
    try:
        table = pajson.read_json(pa.py_buffer(block), read_options=read, parse_options=parse)
    except pa.ArrowInvalid:
        return _json_lines(block, known, ignore_unknown)
    unknown = [name for name in table.column_names if name not in known]
    if unknown and not ignore_unknown:
        return _json_lines(block, known, ignore_unknown)
    kept = table.drop_columns(unknown)
    if any(pa.types.is_nested(f.type) for f in kept.schema):
        return _json_lines(block, known, ignore_unknown)  # the lines with nested values are bad
    return one_batch(kept), []


def _json_lines(
    block: bytes, known: set[str], ignore_unknown: bool
) -> tuple[pa.RecordBatch, list[BadRow]]:
    """The slow path for a block pyarrow refused: each line alone, bad ones quarantined."""
    rows: list[dict[str, Any]] = []
    bad: list[BadRow] = []
    number = 0
    for line in block.split(b"\n"):
        if blank(line):
            continue
        number += 1
        text = line.decode("utf-8", errors="replace")
        reason, values = _json_record(line, known, ignore_unknown)
        if reason is not None:
            bad.append(BadRow.clipped(number, reason, text))
        else:
            rows.append(values)
    names = sorted({k for r in rows for k in r})
    columns = {name: pa.array([_text(r.get(name)) for r in rows], pa.string()) for name in names}
    return pa.RecordBatch.from_pydict(columns) if names else _empty_rows(len(rows)), bad


def _json_record(
    line: bytes, known: set[str], ignore_unknown: bool
) -> tuple[str | None, dict[str, Any]]:
    try:
        value = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"not valid JSON: {exc}", {}
    if not isinstance(value, dict):
        return "not a JSON object", {}
    unknown = [k for k in value if k not in known]
    if unknown and not ignore_unknown:
        return f"unknown field {unknown[0]!r}", {}
    nested = [k for k, v in value.items() if k in known and isinstance(v, dict | list)]
    if nested:
        return f"{nested[0]}: nested values are not supported", {}
    return None, {k: v for k, v in value.items() if k in known}


def _text(value: object) -> str | None:
    """JSON scalars as text; the validate stage casts them to the column's type."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def _empty_rows(count: int) -> pa.RecordBatch:
    """A batch of ``count`` rows and no columns (records like ``{}``)."""
    return pa.RecordBatch.from_pydict({"_": pa.nulls(count)}).drop_columns(["_"])


# ---- Parquet --------------------------------------------------------------------------------


def _parquet_batches(
    pipeline: Pipeline, feed: Feed, room: SpoolAccount | None
) -> Iterator[ParsedBatch]:
    with tempfile.NamedTemporaryFile(prefix="ingest-src-", suffix=".parquet") as spool:
        size = 0
        for chunk in feed.chunks():
            if room is not None:
                room.take(len(chunk), "the Parquet file")
            spool.write(chunk)
            size += len(chunk)
            feed.settle(len(chunk))
        spool.flush()
        if size == 0:
            return  # an empty object: no rows
        yield from _parquet_file(pipeline, spool.name)


def _parquet_file(pipeline: Pipeline, path: str) -> Iterator[ParsedBatch]:
    try:
        source = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise PermanentError(f"not a readable Parquet file: {exc}") from exc
    known = source_names(pipeline)
    names = source.schema_arrow.names
    unknown = [n for n in names if n not in known]
    if unknown and not pipeline.ignore_unknown_fields:
        raise PermanentError(f"file column {unknown[0]!r} is not in the table schema")
    columns = [n for n in names if n in known]
    row = 1
    try:
        for batch in source.iter_batches(
            batch_size=PARQUET_BATCH_ROWS, columns=columns, use_threads=False
        ):
            yield ParsedBatch(batch, RowNumbers(row))
            row += batch.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        raise PermanentError(f"Parquet file cannot be read near row {row}: {exc}") from exc
