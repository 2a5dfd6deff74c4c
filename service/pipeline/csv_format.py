"""CSV: the header, and blocks of records parsed by pyarrow's CSV reader.

Integer, float, string and date columns are converted by the reader itself, and so are
timestamps once the file's first block has shown whether they carry a zone; every other
column is read as raw bytes for the validate stage to check value by value.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from concurrent.futures import Executor

import pyarrow as pa
import pyarrow.csv as pacsv

from service.errors import PermanentError
from service.models import Column
from service.pipeline.batches import ParsedBatch, Reopen, in_order, one_batch, records_after
from service.pipeline.casts import ZONE_PATTERN
from service.pipeline.context import BadRow
from service.pipeline.csv_head import csv_head
from service.pipeline.csv_stream import Reread, streamed_batches
from service.pipeline.definition import CsvOptions, Pipeline
from service.pipeline.feed import (
    Feed,
    only_newlines,
    record_blocks,
    utf8_chunks,
)

# Column types pyarrow's CSV reader converts exactly as the validate stage would.
CSV_FAST_TYPES = {
    "INTEGER": pa.int64(),
    "FLOAT": pa.float64(),
    "STRING": pa.string(),
    "DATE": pa.date32(),
}
# TIMESTAMP text with a zone, and without one (read as UTC, as the validate stage reads it).
ZONED, NAIVE = pa.timestamp("us", tz="UTC"), pa.timestamp("us")
# Values a timestamp column's zone is judged by (the validate stage looks at as many).
ZONE_SAMPLE = 64
# Bytes after the header the streamed pass judges timestamp zones by.
SAMPLE_BYTES = 64 * 1024

log = logging.getLogger(__name__)


def csv_batches(
    pipeline: Pipeline, feed: Feed, workers: Executor | None, reread: Reopen | None = None
) -> Iterator[ParsedBatch]:
    """The file's records: in one streamed pass with every column typed, or block by block.

    The streamed pass needs ``reread``, a way to read the file again should it stop at a value
    that does not convert; the records after those it handed on are then parsed block by block
    (several blocks at once with ``workers``), where a bad value is only a bad row.
    """
    if reread is None:
        yield from _block_batches(pipeline, feed, workers)
        return
    opts = pipeline.csv
    names, first, chunks = csv_head(pipeline, opts, utf8_chunks(feed.chunks(), opts.encoding))
    if names is None:
        return  # an empty file, or only the header: nothing to parse
    sample, chunks = _sample(first, chunks)
    convert = _stream_convert(pipeline, names, sample)
    try:
        yield from streamed_batches(
            feed, sample, chunks, names=names, parse=_parse_options(opts), convert=convert
        )
    except Reread as again:
        log.info("CSV read again from record %d, block by block: %s", again.records + 1, again)
        feed = reread(again.unsettled)
        yield from records_after(_block_batches(pipeline, feed, workers), again.records)


def _block_batches(
    pipeline: Pipeline, feed: Feed, workers: Executor | None
) -> Iterator[ParsedBatch]:
    opts = pipeline.csv
    quote = opts.quote_char.encode() if opts.quote_char else None
    names, first, chunks = csv_head(pipeline, opts, utf8_chunks(feed.chunks(), opts.encoding))
    if names is None:
        return
    blocks = record_blocks(_chain(first, chunks), quote)
    reader = _CsvBlocks(pipeline, names)
    yield from in_order(blocks, reader.parse, feed, workers, no_records=only_newlines)


def _sample(first: bytes, chunks: Iterator[bytes]) -> tuple[bytes, Iterator[bytes]]:
    """At least SAMPLE_BYTES of the text after the header (less in a shorter file)."""
    parts = [first]
    size = len(first)
    while size < SAMPLE_BYTES and (chunk := next(chunks, None)) is not None:
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts), chunks


def _stream_convert(pipeline: Pipeline, names: list[str], sample: bytes) -> pacsv.ConvertOptions:
    """The streamed pass's types: the block path's, timestamps judged by the sample's records."""
    blocks = _CsvBlocks(pipeline, names)
    typed = blocks.typed or blocks.raw
    head = sample[: sample.rfind(b"\n", 0, SAMPLE_BYTES) + 1]
    if head:
        with contextlib.suppress(pa.ArrowInvalid):  # the streamed pass will meet it too
            blocks._judge_zones(blocks._read(head, typed)[0], typed)
    return blocks.stamped or typed


def _convert(opts: CsvOptions, types: dict[str, pa.DataType]) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        column_types=types,
        null_values=list(opts.null_values),
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )


def _parse_options(opts: CsvOptions) -> pacsv.ParseOptions:
    return pacsv.ParseOptions(
        delimiter=opts.delimiter,
        quote_char=opts.quote_char or False,
        newlines_in_values=True,
        ignore_empty_lines=True,
    )


class _CsvBlocks:
    """Parses blocks of one file's records.

    Integer, float, string and date columns are converted by pyarrow's CSV reader itself (as
    fast as reading them as bytes, and the validate stage then has nothing left to do for
    them). Timestamps too, once the first block has shown whether each column's values carry
    a zone: the reader parses them five times faster than a cast of the text, with the same
    parser. A block with a value that does not convert is parsed again with timestamps as
    bytes (and the file's later blocks are parsed that way), then with every column as raw
    bytes, and the validate stage says which rows are bad and why.

    Blocks are parsed by several threads at once: ``stamped`` is only ever replaced whole.
    """

    def __init__(self, pipeline: Pipeline, names: list[str]) -> None:
        opts = pipeline.csv
        self.names = names
        self.options = opts
        raw = dict.fromkeys(names, pa.binary())
        typed = {name: _fast_type(pipeline, name) or pa.binary() for name in names}
        self.typed = self._convert(typed) if typed != raw else None
        self.raw = self._convert(raw)
        self.timestamps = [n for n in names if _target(pipeline, n, "TIMESTAMP") is not None]
        self.stamped: pacsv.ConvertOptions | None = None
        self._zones_judged = not self.timestamps

    def _convert(self, types: dict[str, pa.DataType]) -> pacsv.ConvertOptions:
        return _convert(self.options, types)

    def parse(self, block: bytes) -> tuple[pa.RecordBatch, list[BadRow]]:
        """One block; bad rows are numbered from the block's first record (1)."""
        stamped = self.stamped
        if stamped is not None:
            try:
                return self._read(block, stamped)
            except pa.ArrowInvalid:
                self.stamped = None  # text the reader will not take as a timestamp
        if self.typed is not None:
            try:
                parsed = self._read(block, self.typed)
            except pa.ArrowInvalid:
                pass  # a value did not convert (or the block is malformed): parse as bytes
            else:
                self._judge_zones(parsed[0], self.typed)
                return parsed
        try:
            return self._read(block, self.raw)
        except pa.ArrowInvalid as exc:
            raise PermanentError(f"CSV cannot be parsed: {exc}") from exc

    def _judge_zones(self, batch: pa.RecordBatch, typed: pacsv.ConvertOptions) -> None:
        """From the first block read with ``typed``: how the timestamps are written."""
        if self._zones_judged:
            return
        self._zones_judged = True
        types = dict(typed.column_types)
        for name in self.timestamps:
            kind = _zone_kind(batch.column(name))
            if kind is not None:  # else no value to judge by: the column stays text
                types[name] = kind
        if types != typed.column_types:
            self.stamped = self._convert(types)

    def _read(
        self, block: bytes, convert: pacsv.ConvertOptions
    ) -> tuple[pa.RecordBatch, list[BadRow]]:
        bad: list[BadRow] = []

        def invalid_row(row: pacsv.InvalidRow) -> str:
            number = row.number
            reason = f"expected {row.expected_columns} columns, found {row.actual_columns}"
            bad.append(BadRow.clipped(number, reason, row.text))
            return "skip"

        parse = _parse_options(self.options)
        # Whole blocks are parsed at once, so quoted newlines are read as values anyway.
        parse.newlines_in_values = False
        parse.invalid_row_handler = invalid_row
        read = pacsv.ReadOptions(
            use_threads=False, block_size=len(block) + 1, column_names=self.names
        )
        table = pacsv.read_csv(
            pa.py_buffer(block), read_options=read, parse_options=parse, convert_options=convert
        )
        return one_batch(table), bad


def _zone_kind(raw: pa.Array) -> pa.DataType | None:
    """ZONED or NAIVE by the column's first value, as the validate stage judges it."""
    for value in raw.slice(0, ZONE_SAMPLE).to_pylist():
        if value:
            text = value.decode("utf-8", "replace").strip()
            return ZONED if ZONE_PATTERN.search(text) else NAIVE
    return None


def _fast_type(pipeline: Pipeline, name: str) -> pa.DataType | None:
    """The type pyarrow's CSV reader may produce for a file column, when it reads it as the
    validate stage would (same parsers, same nulls); None leaves the column as bytes."""
    column = _target(pipeline, name)
    return None if column is None else CSV_FAST_TYPES.get(column.type)


def _target(pipeline: Pipeline, name: str, kind: str | None = None) -> Column | None:
    """The schema column a file column fills as it is (of type ``kind``, when given); None
    when it is dropped, computed, parsed with a format, or not in the schema."""
    transforms = pipeline.transforms
    if any(t.column == name and t.op == "drop" for t in transforms):
        return None
    target = next((t.to for t in transforms if t.op == "rename" and t.column == name), name)
    if any(t.column == target and t.op != "rename" for t in transforms):
        return None  # computed, or parsed with a format
    column = next((c for c in pipeline.table.columns if c.name == target), None)
    if column is None or column.nested or (kind is not None and column.type != kind):
        return None
    return column


def _chain(first: bytes, blocks: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from blocks
