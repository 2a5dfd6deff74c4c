"""parse: bytes into Arrow record batches with pyarrow's streaming readers.

The reader runs in a worker thread and pulls chunks from a small bounded queue (the feed), so
parsing overlaps with the download and memory stays bounded. Every column is read as raw bytes;
typing and UTF-8 checks belong to the validate stage, where a bad value costs one row, not the
whole file.
"""

from __future__ import annotations

import csv
import io
import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.csv as pacsv

from service.errors import PermanentError
from service.pipeline.config import CsvOptions, Pipeline
from service.pipeline.context import BadRow

BLOCK_BYTES = 4 * 1024 * 1024


@dataclass
class ParsedBatch:
    batch: pa.RecordBatch
    first_row: int
    bad: list[BadRow] = field(default_factory=list)


class Feed(io.RawIOBase):
    """A read-only file over chunks put on a bounded queue by another thread; None ends it."""

    def __init__(self, depth: int = 4) -> None:
        super().__init__()
        self.chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._buffer = b""
        self._ended = False
        self.head = b""  # the first bytes seen, kept for header sniffing

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer and not self._ended:
            chunk = self.chunks.get()
            if chunk is None:
                self._ended = True
            else:
                self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size

    def peek_head(self, limit: int = 64 * 1024) -> bytes:
        """Read ahead (without consuming) until a newline or ``limit`` bytes are buffered."""
        while b"\n" not in self._buffer and len(self._buffer) < limit and not self._ended:
            chunk = self.chunks.get()
            if chunk is None:
                self._ended = True
            else:
                self._buffer += chunk
        return self._buffer


def parse_batches(pipeline: Pipeline, feed: Feed) -> Iterator[ParsedBatch]:
    """Run in a worker thread: yields batches of raw-bytes columns."""
    if pipeline.format == "csv":
        yield from _csv_batches(pipeline, feed)
    else:
        raise PermanentError(f"format {pipeline.format} is not supported by this build yet")


def _csv_batches(pipeline: Pipeline, feed: Feed) -> Iterator[ParsedBatch]:
    opts = pipeline.csv
    names = _column_names(pipeline, opts, feed)
    if names is None:
        return  # an empty file: nothing to parse
    pending: list[BadRow] = []
    reader = _open_csv(feed, opts, names, pending.append)
    row = 1
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as exc:
            raise PermanentError(f"CSV cannot be parsed: {exc}") from exc
        yield ParsedBatch(batch, row, pending[:])
        pending.clear()
        row += batch.num_rows
    if pending:
        empty = pa.RecordBatch.from_arrays([pa.array([], pa.binary()) for _ in names], names=names)
        yield ParsedBatch(empty, row, pending[:])


def _column_names(pipeline: Pipeline, opts: CsvOptions, feed: Feed) -> list[str] | None:
    head = feed.peek_head()
    if not head.strip():
        return None
    if not opts.header:
        computed = {t.column for t in pipeline.transforms if t.op in ("constant", "from_path")}
        return [c.name for c in pipeline.table.columns if c.name not in computed]
    lines = head.decode(opts.encoding, errors="replace").splitlines()
    first = lines[opts.skip_rows] if len(lines) > opts.skip_rows else ""
    row = next(csv.reader([first], delimiter=opts.delimiter, quotechar=opts.quote_char), [])
    names = [name.strip().lstrip("\ufeff") for name in row]
    if not any(names):
        raise PermanentError("CSV header row is empty")
    return names


def _open_csv(
    feed: Feed, opts: CsvOptions, names: list[str], on_bad: Callable[[BadRow], None]
) -> pacsv.CSVStreamingReader:
    def invalid_row(row: pacsv.InvalidRow) -> str:
        on_bad(
            BadRow(
                row.number,
                f"expected {row.expected_columns} columns, found {row.actual_columns}",
                row.text,
            )
        )
        return "skip"

    read = pacsv.ReadOptions(
        use_threads=False,
        block_size=BLOCK_BYTES,
        skip_rows=opts.skip_rows + (1 if opts.header else 0),
        column_names=names,
        encoding=opts.encoding,
    )
    parse = pacsv.ParseOptions(
        delimiter=opts.delimiter,
        quote_char=opts.quote_char,
        invalid_row_handler=invalid_row,
        newlines_in_values=True,
    )
    convert = pacsv.ConvertOptions(
        column_types={name: pa.binary() for name in names},
        null_values=list(opts.null_values),
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    try:
        return pacsv.open_csv(feed, read_options=read, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise PermanentError(f"CSV cannot be parsed: {exc}") from exc
