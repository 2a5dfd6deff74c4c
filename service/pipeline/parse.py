"""parse: bytes into Arrow record batches with pyarrow's readers; no per-row Python.

The parse stage runs in its unit's own worker thread and pulls chunks from the feed, a bounded
channel filled by the extract stage on the event loop, so parsing overlaps with the download.

CSV and NDJSON: the stream is transcoded to UTF-8 when needed, then cut at record boundaries
into blocks of about ``BLOCK_BYTES`` (a longer record makes a longer block, up to
``MAX_RECORD_BYTES``), and each block is parsed by pyarrow. CSV columns are read as raw bytes:
typing and UTF-8 checks belong to the validate stage, where a bad value costs one row, not the
file. A block of NDJSON that pyarrow refuses is parsed again line by line, so a bad line is
quarantined instead of failing the file. Parquet needs random access: the stream is spooled to
a temporary file, then read one row group at a time.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import json
import queue
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from service.errors import PermanentError
from service.pipeline.config import CsvOptions, Pipeline
from service.pipeline.context import BadRow, RowNumbers

BLOCK_BYTES = 4 * 1024 * 1024
# BigQuery's own limit for one CSV or JSON row; a longer record fails the file.
MAX_RECORD_BYTES = 100 * 1024 * 1024
# Rows per batch read from a Parquet file.
PARQUET_BATCH_ROWS = 64 * 1024
UTF8_BOM = codecs.BOM_UTF8
NOT_BLANK = re.compile(rb"\S")
UTF8_NAMES = frozenset({"utf-8", "utf8", "utf_8", "utf-8-sig", "utf_8_sig"})


@dataclass
class ParsedBatch:
    batch: pa.RecordBatch
    rows: RowNumbers
    bad: list[BadRow] = field(default_factory=list)
    raw_bytes: int = 0  # input bytes this batch accounts for in the byte budget

    @property
    def records(self) -> int:
        """Records read: the rows of the batch and those dropped while parsing it."""
        rows: int = self.batch.num_rows
        return rows + len(self.bad)


class Feed:
    """Chunks from the event loop to the parse thread: bounded, and closable from either side.

    ``put`` runs on the loop and waits for room; ``get`` runs in the parse thread and blocks
    until a chunk or the end arrives. ``close`` never blocks, so a failure anywhere can always
    release a parse thread waiting for data.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        depth: int = 4,
        on_settle: Callable[[int], None] | None = None,
    ) -> None:
        self._loop = loop
        self._on_settle = on_settle
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._room = asyncio.Semaphore(depth)
        self._ended = False
        self.consumed = 0  # bytes handed to the parser so far

    async def put(self, chunk: bytes) -> None:
        await self._room.acquire()
        self._queue.put(chunk)

    def close(self) -> None:
        self._queue.put(None)

    def get(self) -> bytes | None:
        if self._ended:
            return None
        chunk = self._queue.get()
        if chunk is None:
            self._ended = True
            return None
        self.consumed += len(chunk)
        self._call(lambda _: self._room.release(), 0)
        return chunk

    def settle(self, size: int) -> None:
        """Called by the parser: ``size`` bytes it took no longer sit in memory (on disk)."""
        if self._on_settle is not None:
            self._call(self._on_settle, size)

    def _call(self, fn: Callable[[int], None], arg: int) -> None:
        # A closed loop means the unit was abandoned: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(fn, arg)

    def chunks(self) -> Iterator[bytes]:
        while (chunk := self.get()) is not None:
            yield chunk


def parse_batches(pipeline: Pipeline, feed: Feed) -> Iterator[ParsedBatch]:
    """Run in a worker thread: yields batches of raw columns with their row numbers."""
    if pipeline.format == "csv":
        yield from _csv_batches(pipeline, feed)
    elif pipeline.format == "ndjson":
        yield from _ndjson_batches(pipeline, feed)
    else:
        yield from _parquet_batches(pipeline, feed)


# ---- cutting a stream into blocks of whole records ------------------------------------------


def utf8_chunks(chunks: Iterator[bytes], encoding: str) -> Iterator[bytes]:
    """The stream as UTF-8 without a byte-order mark. UTF-8 passes through unchecked."""
    if encoding.lower() in UTF8_NAMES:
        yield from _without_bom(chunks)
        return
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    first = True
    try:
        for chunk in chunks:
            text = decoder.decode(chunk)
            if first and text:
                text, first = text.removeprefix("\ufeff"), False
            yield text.encode("utf-8")
        yield decoder.decode(b"", final=True).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise PermanentError(f"the file is not valid {encoding}: {exc.reason}") from exc


def _without_bom(chunks: Iterator[bytes]) -> Iterator[bytes]:
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= len(UTF8_BOM):
            yield head.removeprefix(UTF8_BOM)
            break
    else:
        if head:
            yield head.removeprefix(UTF8_BOM)
        return
    yield from chunks


def record_blocks(chunks: Iterator[bytes], quote: bytes | None) -> Iterator[bytes]:
    """Blocks of whole records (ending at a newline), about BLOCK_BYTES each."""
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        if len(pending) < BLOCK_BYTES:
            continue
        cut = _boundary(pending, quote)
        if cut < 0:
            if len(pending) > MAX_RECORD_BYTES:
                raise PermanentError(f"a record is longer than {MAX_RECORD_BYTES} bytes")
            continue
        yield bytes(pending[: cut + 1])
        del pending[: cut + 1]
    if pending:
        yield bytes(pending)


def _boundary(buffer: bytearray, quote: bytes | None) -> int:
    """The last newline that ends a record; inside quotes (odd quote count) it does not."""
    end = buffer.rfind(b"\n")
    if quote is None or end < 0:
        return end
    quotes = buffer.count(quote, 0, end)
    while end >= 0 and quotes % 2:
        previous = buffer.rfind(b"\n", 0, end)
        quotes -= buffer.count(quote, previous + 1, end)
        end = previous
    return end


def _blank(block: bytes) -> bool:
    return NOT_BLANK.search(block) is None


# ---- CSV ------------------------------------------------------------------------------------


def _csv_batches(pipeline: Pipeline, feed: Feed) -> Iterator[ParsedBatch]:
    opts = pipeline.csv
    quote = opts.quote_char.encode() if opts.quote_char and opts.allow_quoted_newlines else None
    blocks = record_blocks(utf8_chunks(feed.chunks(), opts.encoding), quote)
    names, blocks = _csv_head(pipeline, opts, blocks)
    if names is None:
        return  # an empty file, or only the header: nothing to parse
    parse_options = _csv_parse_options(opts)
    convert = pacsv.ConvertOptions(
        column_types={name: pa.binary() for name in names},
        null_values=list(opts.null_values),
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    row = 1
    attributed = 0
    for block in blocks:
        if _blank(block):
            continue
        batch, bad = _csv_block(block, names, parse_options, convert, row)
        raw, attributed = feed.consumed - attributed, feed.consumed
        parsed = ParsedBatch(batch, RowNumbers(row, tuple(b.row for b in bad if b.row)), bad, raw)
        yield parsed
        row += parsed.records


def _csv_head(
    pipeline: Pipeline, opts: CsvOptions, blocks: Iterator[bytes]
) -> tuple[list[str] | None, Iterator[bytes]]:
    """Column names, and the blocks that follow the skipped lines and the header."""
    skip = opts.skip_rows + (1 if opts.header else 0)
    header = b""
    rest = b""
    for block in blocks:
        rest = block
        while skip and rest:
            line, _, rest = rest.partition(b"\n")
            header = line
            skip -= 1
        if not skip:
            break
    names: list[str] | None
    if not opts.header:
        computed = {t.column for t in pipeline.transforms if t.op in ("constant", "from_path")}
        names = [c.name for c in pipeline.table.columns if c.name not in computed]
    else:
        names = _header_names(header, opts)
    if names is None or skip:
        return None, iter(())
    return names, _chain(rest, blocks)


def _chain(first: bytes, blocks: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from blocks


def _header_names(line: bytes, opts: CsvOptions) -> list[str] | None:
    text = line.decode("utf-8", errors="replace").rstrip("\r")
    if not text.strip():
        return None
    quote = opts.quote_char or None
    reader = csv.reader([text], delimiter=opts.delimiter, quotechar=quote, quoting=_quoting(opts))
    names = [name.strip() for name in next(reader, [])]
    if not all(names):
        raise PermanentError("CSV header has an empty column name")
    if len(set(names)) != len(names):
        raise PermanentError("CSV header names a column twice")
    return names


def header_names(head: bytes, opts: CsvOptions) -> list[str] | None:
    """Column names from the first bytes of a CSV file; None when the header is not all there."""
    lines = head.removeprefix(UTF8_BOM).split(b"\n", opts.skip_rows + 1)
    if len(lines) <= opts.skip_rows + 1:
        return None
    return _header_names(lines[opts.skip_rows], opts)


def _quoting(opts: CsvOptions) -> Literal[0, 3]:
    return csv.QUOTE_MINIMAL if opts.quote_char else csv.QUOTE_NONE


def _csv_parse_options(opts: CsvOptions) -> pacsv.ParseOptions:
    return pacsv.ParseOptions(
        delimiter=opts.delimiter,
        quote_char=opts.quote_char or False,
        newlines_in_values=opts.allow_quoted_newlines,
        ignore_empty_lines=True,
    )


def _csv_block(
    block: bytes,
    names: list[str],
    parse_options: pacsv.ParseOptions,
    convert: pacsv.ConvertOptions,
    first_row: int,
) -> tuple[pa.RecordBatch, list[BadRow]]:
    bad: list[BadRow] = []

    def invalid_row(row: pacsv.InvalidRow) -> str:
        number = None if row.number is None else first_row + row.number - 1
        reason = f"expected {row.expected_columns} columns, found {row.actual_columns}"
        bad.append(BadRow.clipped(number, reason, row.text))
        return "skip"

    options = pacsv.ParseOptions(
        delimiter=parse_options.delimiter,
        quote_char=parse_options.quote_char,
        newlines_in_values=parse_options.newlines_in_values,
        ignore_empty_lines=True,
        invalid_row_handler=invalid_row,
    )
    read = pacsv.ReadOptions(use_threads=False, block_size=len(block) + 1, column_names=names)
    try:
        table = pacsv.read_csv(
            pa.py_buffer(block), read_options=read, parse_options=options, convert_options=convert
        )
    except pa.ArrowInvalid as exc:
        raise PermanentError(f"CSV cannot be parsed near row {first_row}: {exc}") from exc
    return _one_batch(table), bad


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    batches = table.combine_chunks().to_batches()
    if batches:
        return batches[0]
    return pa.RecordBatch.from_arrays(
        [pa.array([], f.type) for f in table.schema], schema=table.schema
    )


# ---- newline-delimited JSON ----------------------------------------------------------------


def _ndjson_batches(pipeline: Pipeline, feed: Feed) -> Iterator[ParsedBatch]:
    known = source_names(pipeline)
    row = 1
    attributed = 0
    for block in record_blocks(utf8_chunks(feed.chunks(), "utf-8"), None):
        if _blank(block):
            continue
        batch, bad = _json_block(block, row, known, pipeline.ignore_unknown_fields)
        raw, attributed = feed.consumed - attributed, feed.consumed
        parsed = ParsedBatch(batch, RowNumbers(row, tuple(b.row for b in bad if b.row)), bad, raw)
        yield parsed
        row += parsed.records


def source_names(pipeline: Pipeline) -> set[str]:
    """Field names a file may carry: schema columns, their names before renames, drops."""
    names = {c.name for c in pipeline.table.columns}
    for t in pipeline.transforms:
        if t.op in ("rename", "drop"):
            names.add(t.column)
    return names


def _json_block(
    block: bytes, first_row: int, known: set[str], ignore_unknown: bool
) -> tuple[pa.RecordBatch, list[BadRow]]:
    read = pajson.ReadOptions(use_threads=False, block_size=len(block) + 1)
    parse = pajson.ParseOptions(newlines_in_values=False, unexpected_field_behavior="infer")
    try:
        table = pajson.read_json(pa.py_buffer(block), read_options=read, parse_options=parse)
    except pa.ArrowInvalid:
        return _json_lines(block, first_row, known, ignore_unknown)
    unknown = [name for name in table.column_names if name not in known]
    if unknown and not ignore_unknown:
        return _json_lines(block, first_row, known, ignore_unknown)
    return _one_batch(table.drop_columns(unknown)), []


def _json_lines(
    block: bytes, first_row: int, known: set[str], ignore_unknown: bool
) -> tuple[pa.RecordBatch, list[BadRow]]:
    """The slow path for a block pyarrow refused: each line alone, bad ones quarantined."""
    rows: list[dict[str, Any]] = []
    bad: list[BadRow] = []
    number = first_row - 1
    for line in block.split(b"\n"):
        if _blank(line):
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


def _parquet_batches(pipeline: Pipeline, feed: Feed) -> Iterator[ParsedBatch]:
    with tempfile.NamedTemporaryFile(prefix="ingest-src-", suffix=".parquet") as spool:
        size = 0
        for chunk in feed.chunks():
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
