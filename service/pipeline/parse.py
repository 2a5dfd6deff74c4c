"""parse: bytes into Arrow record batches with pyarrow's readers; no per-row Python.

The parse stage runs in its unit's own worker thread and pulls chunks from the feed, so parsing
overlaps with the download; blocks of a file are parsed by several workers at once. CSV: see
csv_format.py. A block of NDJSON that pyarrow refuses is parsed again line by line, so a bad
line is quarantined instead of failing the file. Nested values pass through as Arrow structs
and lists; where the text itself must be kept (a JSON column, or an object in a STRING column:
pyarrow would add the keys other lines have), the block takes the line-by-line path, which keeps
such values as their JSON text. Parquet needs random access: the stream is spooled to a
temporary file, then read one row group at a time.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from service.errors import PermanentError
from service.models import Column
from service.pipeline.batches import ParsedBatch, Reopen, in_order, one_batch
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
    reread: Reopen | None = None,
) -> Iterator[ParsedBatch]:
    """Run in a worker thread: yields batches with their row numbers, in file order.

    ``workers`` parse blocks in parallel (they only compute, never wait on anything); a Parquet
    file's spool takes its bytes from ``room``; ``reread`` lets a CSV file be read in one
    streamed pass (see csv_format).
    """
    if pipeline.format == "csv":
        yield from csv_batches(pipeline, feed, workers, reread)
    elif pipeline.format == "ndjson":
        yield from _ndjson_batches(pipeline, feed, workers)
    else:
        yield from _parquet_batches(pipeline, feed, room)


# ---- newline-delimited JSON ----------------------------------------------------------------


def _ndjson_batches(
    pipeline: Pipeline, feed: Feed, workers: Executor | None
) -> Iterator[ParsedBatch]:
    shape = JsonShape.of(pipeline)
    blocks = record_blocks(utf8_chunks(feed.chunks(), "utf-8"), None)

    def parse(block: bytes) -> tuple[pa.RecordBatch, list[BadRow]]:
        return _json_block(block, shape)

    yield from in_order(blocks, parse, feed, workers)


def source_names(pipeline: Pipeline) -> set[str]:
    """Field names a file may carry: schema columns, their names before renames, drops."""
    names = {c.name for c in pipeline.table.columns}
    for t in pipeline.transforms:
        if t.op in ("rename", "drop"):
            names.add(t.column)
    return names


@dataclass(frozen=True)
class JsonShape:
    """What the NDJSON parser needs to know of the schema, by the file's field names."""

    known: frozenset[str]
    ignore_unknown: bool
    json: frozenset[str] = frozenset()  # JSON columns: their values become JSON text
    nested: frozenset[str] = frozenset()  # RECORD and REPEATED columns

    @classmethod
    def of(cls, pipeline: Pipeline) -> JsonShape:
        sources: dict[str, set[str]] = {c.name: {c.name} for c in pipeline.table.columns}
        for t in pipeline.transforms:
            if t.op == "rename" and t.to in sources:
                sources[t.to].add(t.column)

        def named(wanted: Callable[[Column], bool]) -> frozenset[str]:
            found = (sources[c.name] for c in pipeline.table.columns if wanted(c))
            return frozenset(name for names in found for name in names)

        return cls(
            frozenset(source_names(pipeline)),
            pipeline.ignore_unknown_fields,
            json=named(lambda c: c.type == "JSON" and not c.nested),
            nested=named(lambda c: c.nested),
        )


def _json_block(block: bytes, shape: JsonShape) -> tuple[pa.RecordBatch, list[BadRow]]:
    read = pajson.ReadOptions(use_threads=False, block_size=len(block) + 1)
    # JSON columns read as strings: any other value (an object) sends the block line by line.
    explicit = pa.schema([(name, pa.string()) for name in sorted(shape.json)])
    parse = pajson.ParseOptions(newlines_in_values=False, unexpected_field_behavior="infer")
    if shape.json:
        parse.explicit_schema = explicit
    try:
        table = pajson.read_json(pa.py_buffer(block), read_options=read, parse_options=parse)
    except pa.ArrowInvalid:
        return _json_lines(block, shape)
    unknown = [name for name in table.column_names if name not in shape.known]
    if unknown and not shape.ignore_unknown:
        return _json_lines(block, shape)
    kept = table.drop_columns(unknown)
    for index, (name, column) in enumerate(zip(kept.column_names, kept.columns, strict=True)):
        kind = column.type
        nested = pa.types.is_nested(kind)
        if (name in shape.nested and not nested and not pa.types.is_null(kind)) or (
            nested and name not in shape.nested
        ):
            return _json_lines(block, shape)  # the exact text, or the exact reason
        if name in shape.json:
            kept = kept.set_column(index, name, _json_strings(column))
    return one_batch(kept), []


def _json_strings(column: pa.ChunkedArray) -> pa.Array:
    """A JSON column's string values as JSON text (the JSON string ``"a"``, quotes and all)."""
    return pa.array([None if v is None else json.dumps(v) for v in column.to_pylist()], pa.string())


def _json_lines(block: bytes, shape: JsonShape) -> tuple[pa.RecordBatch, list[BadRow]]:
    """The slow path for a block pyarrow refused: each line alone, bad ones quarantined."""
    rows: list[dict[str, Any]] = []
    bad: list[BadRow] = []
    number = 0
    for line in block.split(b"\n"):
        if blank(line):
            continue
        number += 1
        text = line.decode("utf-8", errors="replace")
        reason, values = _json_record(line, shape)
        if reason is not None:
            bad.append(BadRow.clipped(number, reason, text))
        else:
            rows.append(values)
    names = sorted({k for r in rows for k in r})
    columns = {name: _json_column([r.get(name) for r in rows], name, shape) for name in names}
    return pa.RecordBatch.from_pydict(columns) if names else _empty_rows(len(rows)), bad


def _json_record(line: bytes, shape: JsonShape) -> tuple[str | None, dict[str, Any]]:
    try:
        value = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"not valid JSON: {exc}", {}
    if not isinstance(value, dict):
        return "not a JSON object", {}
    unknown = [k for k in value if k not in shape.known]
    if unknown and not shape.ignore_unknown:
        return f"unknown field {unknown[0]!r}", {}
    return None, {k: v for k, v in value.items() if k in shape.known}


def _json_column(values: list[Any], name: str, shape: JsonShape) -> pa.Array:
    """One field of the lines: nested columns as Arrow structs and lists when the values agree
    on their types (the validate stage's fast path), else, like JSON columns, as JSON text."""
    if name in shape.nested:
        try:
            found = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            found = None
        if found is not None and (pa.types.is_nested(found.type) or pa.types.is_null(found.type)):
            return found
    as_json = name in shape.json or name in shape.nested
    return pa.array([_text(v, as_json) for v in values], pa.string())


def _text(value: object, as_json: bool) -> str | None:
    """JSON scalars as text (the validate stage casts them to the column's type); objects,
    arrays, and every value of a JSON, RECORD or REPEATED column, as JSON text."""
    if value is None or (isinstance(value, str) and not as_json):
        return value
    return json.dumps(value, ensure_ascii=False)


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
