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
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from service.errors import PermanentError
from service.pipeline.config import CsvOptions, Pipeline
from service.pipeline.context import BadRow, RowNumbers

BLOCK_BYTES = 4 * 1024 * 1024
# Blocks parsed ahead of the one being handed on (with parallel workers).
PARSE_AHEAD = 1
# BigQuery's own limit for one CSV or JSON row; a longer record fails the file.
MAX_RECORD_BYTES = 100 * 1024 * 1024
# A block this long whose quotes never balance is cut at a newline all the same.
STRAY_QUOTE_BYTES = 16 * BLOCK_BYTES
# Rows per batch read from a Parquet file.
PARQUET_BATCH_ROWS = 64 * 1024
UTF8_BOM = codecs.BOM_UTF8
NOT_BLANK = re.compile(rb"\S")
UTF8_NAMES = frozenset({"utf-8", "utf8", "utf_8", "utf-8-sig", "utf_8_sig"})
# Column types pyarrow's CSV reader converts exactly as the validate stage would.
CSV_FAST_TYPES = {
    "INTEGER": pa.int64(),
    "INT64": pa.int64(),
    "FLOAT": pa.float64(),
    "FLOAT64": pa.float64(),
    "STRING": pa.string(),
    "DATE": pa.date32(),
}


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
        on_starve: Callable[[], None] | None = None,
    ) -> None:
        self._loop = loop
        self.on_settle = on_settle
        self._on_starve = on_starve
        self.starved = False  # the parser waits for a chunk (read from the loop's thread)
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
        try:
            chunk = self._queue.get_nowait()
        except queue.Empty:
            self.starved = True
            if self._on_starve is not None:
                self._call(self._on_starve)
            chunk = self._queue.get()
            self.starved = False
        if chunk is None:
            self._ended = True
            return None
        self.consumed += len(chunk)
        self._call(self._room.release)
        return chunk

    def settle(self, size: int) -> None:
        """Called by the parser: ``size`` bytes it took no longer sit in memory (on disk)."""
        if self.on_settle is not None:
            self._call(self.on_settle, size)

    def _call(self, fn: Callable[..., None], *args: int) -> None:
        # A closed loop means the unit was abandoned: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(fn, *args)

    def chunks(self) -> Iterator[bytes]:
        while (chunk := self.get()) is not None:
            yield chunk


def parse_batches(
    pipeline: Pipeline, feed: Feed, workers: Executor | None = None
) -> Iterator[ParsedBatch]:
    """Run in a worker thread: yields batches with their row numbers, in file order.

    ``workers`` parse blocks in parallel (they only compute, never wait on anything).
    """
    if pipeline.format == "csv":
        yield from _csv_batches(pipeline, feed, workers)
    elif pipeline.format == "ndjson":
        yield from _ndjson_batches(pipeline, feed, workers)
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
    """Blocks of whole records, about BLOCK_BYTES each, each built with one copy.

    A newline inside a quoted value (an odd number of quotes before it) does not end a
    record. Should quotes never balance (a stray quote, as in ``5" screen``), a block is cut
    at a plain newline once it reaches STRAY_QUOTE_BYTES.
    """
    pending: list[bytes] = []
    size = 0
    quotes = 0  # quote characters in ``pending``
    for chunk in chunks:
        in_chunk = chunk.count(quote) if quote else 0
        pending.append(chunk)
        size += len(chunk)
        quotes += in_chunk
        if size < BLOCK_BYTES:
            continue
        strict = quote if size < STRAY_QUOTE_BYTES else None
        cut = _cut(chunk, strict, quotes - in_chunk)
        if cut < 0:
            if size > MAX_RECORD_BYTES:
                raise PermanentError(f"a record is longer than {MAX_RECORD_BYTES} bytes")
            continue
        pending[-1] = chunk[: cut + 1]
        yield b"".join(pending)
        rest = chunk[cut + 1 :]
        pending, size, quotes = [rest], len(rest), rest.count(quote) if quote else 0
    if size:
        yield b"".join(pending)


def _cut(chunk: bytes, quote: bytes | None, before: int) -> int:
    """The last newline in ``chunk`` that ends a record (``before``: quotes ahead of it)."""
    end = chunk.rfind(b"\n")
    if quote is None or end < 0:
        return end
    odd = (before + chunk.count(quote, 0, end)) % 2
    while end >= 0 and odd:
        previous = chunk.rfind(b"\n", 0, end)
        odd ^= chunk.count(quote, previous + 1, end) % 2
        end = previous
    return end


def _blank(block: bytes) -> bool:
    return NOT_BLANK.search(block) is None


# ---- CSV ------------------------------------------------------------------------------------


def _csv_batches(pipeline: Pipeline, feed: Feed, workers: Executor | None) -> Iterator[ParsedBatch]:
    opts = pipeline.csv
    quote = opts.quote_char.encode() if opts.quote_char else None
    blocks = record_blocks(utf8_chunks(feed.chunks(), opts.encoding), quote)
    names, blocks = _csv_head(pipeline, opts, blocks)
    if names is None:
        return  # an empty file, or only the header: nothing to parse
    reader = _CsvBlocks(pipeline, names)
    yield from _in_order(blocks, reader.parse, feed, workers)


BlockParser = Callable[[bytes], tuple[pa.RecordBatch, list[BadRow]]]


def _in_order(
    blocks: Iterator[bytes], parse: BlockParser, feed: Feed, workers: Executor | None
) -> Iterator[ParsedBatch]:
    """Parse blocks (several at once when ``workers`` is given), yield them in file order.

    Blocks are numbered from 1 while parsed and renumbered here, once the records of every
    earlier block are known.
    """
    ahead: deque[tuple[Future[tuple[pa.RecordBatch, list[BadRow]]], int]] = deque()
    row = 1
    attributed = 0
    for block in blocks:
        if _blank(block):
            continue
        ahead.append((_submit(workers, parse, block), feed.consumed))
        if len(ahead) <= PARSE_AHEAD:
            continue
        parsed, attributed = _numbered(ahead.popleft(), row, attributed)
        row += parsed.records
        yield parsed
    while ahead:
        parsed, attributed = _numbered(ahead.popleft(), row, attributed)
        row += parsed.records
        yield parsed


def _submit(
    workers: Executor | None, parse: BlockParser, block: bytes
) -> Future[tuple[pa.RecordBatch, list[BadRow]]]:
    if workers is not None:
        return workers.submit(parse, block)
    done: Future[tuple[pa.RecordBatch, list[BadRow]]] = Future()
    try:
        done.set_result(parse(block))
    except Exception as exc:
        done.set_exception(exc)
    return done


def _numbered(
    item: tuple[Future[tuple[pa.RecordBatch, list[BadRow]]], int], row: int, attributed: int
) -> tuple[ParsedBatch, int]:
    future, consumed = item
    batch, relative = future.result()
    shift = row - 1
    bad = [replace(b, row=None if b.row is None else b.row + shift) for b in relative]
    skipped = tuple(b.row for b in bad if b.row is not None)
    return ParsedBatch(batch, RowNumbers(row, skipped), bad, consumed - attributed), consumed


class _CsvBlocks:
    """Parses blocks of one file's records.

    Integer, float, string and date columns are converted by pyarrow's CSV reader itself (as
    fast as reading them as bytes, and the validate stage then has nothing left to do for
    them). A block with a value that does not convert is parsed again with every column as
    raw bytes, and the validate stage says which rows are bad and why.
    """

    def __init__(self, pipeline: Pipeline, names: list[str]) -> None:
        opts = pipeline.csv
        self.names = names
        self.options = opts
        raw = dict.fromkeys(names, pa.binary())
        typed = {name: _fast_type(pipeline, name) or pa.binary() for name in names}
        self.typed = self._convert(typed) if typed != raw else None
        self.raw = self._convert(raw)

    def _convert(self, types: dict[str, pa.DataType]) -> pacsv.ConvertOptions:
        return pacsv.ConvertOptions(
            column_types=types,
            null_values=list(self.options.null_values),
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )

    def parse(self, block: bytes) -> tuple[pa.RecordBatch, list[BadRow]]:
        """One block; bad rows are numbered from the block's first record (1)."""
        if self.typed is not None:
            try:
                return self._read(block, self.typed)
            except pa.ArrowInvalid:
                pass  # a value did not convert (or the block is malformed): parse as bytes
        try:
            return self._read(block, self.raw)
        except pa.ArrowInvalid as exc:
            raise PermanentError(f"CSV cannot be parsed: {exc}") from exc

    def _read(
        self, block: bytes, convert: pacsv.ConvertOptions
    ) -> tuple[pa.RecordBatch, list[BadRow]]:
        bad: list[BadRow] = []

        def invalid_row(row: pacsv.InvalidRow) -> str:
            number = row.number
            reason = f"expected {row.expected_columns} columns, found {row.actual_columns}"
            bad.append(BadRow.clipped(number, reason, row.text))
            return "skip"

        opts = self.options
        parse = pacsv.ParseOptions(
            delimiter=opts.delimiter,
            quote_char=opts.quote_char or False,
            # Whole blocks are parsed at once, so quoted newlines are read as values anyway.
            newlines_in_values=False,
            ignore_empty_lines=True,
            invalid_row_handler=invalid_row,
        )
        read = pacsv.ReadOptions(
            use_threads=False, block_size=len(block) + 1, column_names=self.names
        )
        table = pacsv.read_csv(
            pa.py_buffer(block), read_options=read, parse_options=parse, convert_options=convert
        )
        return _one_batch(table), bad


def _fast_type(pipeline: Pipeline, name: str) -> pa.DataType | None:
    """The type pyarrow's CSV reader may produce for a file column, when it reads it as the
    validate stage would (same parsers, same nulls); None leaves the column as bytes."""
    transforms = pipeline.transforms
    if any(t.column == name and t.op == "drop" for t in transforms):
        return None
    target = next((t.to for t in transforms if t.op == "rename" and t.column == name), name)
    if any(t.column == target and t.op != "rename" for t in transforms):
        return None  # computed, or parsed with a format
    column = next((c for c in pipeline.table.columns if c.name == target), None)
    return None if column is None else CSV_FAST_TYPES.get(column.type)


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


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    batches = table.combine_chunks().to_batches()
    if batches:
        return batches[0]
    return pa.RecordBatch.from_arrays(
        [pa.array([], f.type) for f in table.schema], schema=table.schema
    )


# ---- newline-delimited JSON ----------------------------------------------------------------


def _ndjson_batches(
    pipeline: Pipeline, feed: Feed, workers: Executor | None
) -> Iterator[ParsedBatch]:
    known = source_names(pipeline)
    blocks = record_blocks(utf8_chunks(feed.chunks(), "utf-8"), None)

    def parse(block: bytes) -> tuple[pa.RecordBatch, list[BadRow]]:
        return _json_block(block, known, pipeline.ignore_unknown_fields)

    yield from _in_order(blocks, parse, feed, workers)


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
    return _one_batch(table.drop_columns(unknown)), []


def _json_lines(
    block: bytes, known: set[str], ignore_unknown: bool
) -> tuple[pa.RecordBatch, list[BadRow]]:
    """The slow path for a block pyarrow refused: each line alone, bad ones quarantined."""
    rows: list[dict[str, Any]] = []
    bad: list[BadRow] = []
    number = 0
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
