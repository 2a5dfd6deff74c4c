"""CSV: the header, and blocks of records parsed by pyarrow's CSV reader.

Integer, float, string and date columns are converted by the reader itself; every other
column is read as raw bytes for the validate stage to check value by value.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from concurrent.futures import Executor
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pacsv

from service.errors import PermanentError
from service.pipeline.batches import ParsedBatch, in_order, one_batch
from service.pipeline.context import BadRow
from service.pipeline.definition import CsvOptions, Pipeline
from service.pipeline.feed import (
    UTF8_BOM,
    Feed,
    blank,
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


def csv_batches(pipeline: Pipeline, feed: Feed, workers: Executor | None) -> Iterator[ParsedBatch]:
    opts = pipeline.csv
    quote = opts.quote_char.encode() if opts.quote_char else None
    blocks = record_blocks(utf8_chunks(feed.chunks(), opts.encoding), quote)
    names, blocks = _csv_head(pipeline, opts, blocks)
    if names is None:
        return  # an empty file, or only the header: nothing to parse
    reader = _CsvBlocks(pipeline, names)
    yield from in_order(blocks, reader.parse, feed, workers, no_records=only_newlines)


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
        return one_batch(table), bad


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
    """Column names, and the blocks that follow the skipped lines and the header.

    Blank lines before the header are passed over, as pyarrow passes over blank lines between
    records: a file that starts with an empty line still has its header and all its rows.
    """
    skip = opts.skip_rows
    header: bytes | None = None if opts.header else b""
    rest = b""
    for block in blocks:
        rest = block
        while rest and (skip or header is None):
            line, _, rest = rest.partition(b"\n")
            if skip:
                skip -= 1
            elif not blank(line):
                header = line
        if not skip and header is not None:
            break
    if skip or header is None:
        return None, iter(())  # the file ends before its header: it has no rows
    names: list[str] | None
    if not opts.header:
        computed = {t.column for t in pipeline.transforms if t.op in ("constant", "from_path")}
        names = [c.name for c in pipeline.table.columns if c.name not in computed]
    else:
        names = _header_names(header, opts)
    if names is None:
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
