"""A CSV file's head: the lines it skips, and the header that names its columns.

Read from the stream's chunks before the records are parsed; a line may span chunks.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Literal

from service.errors import PermanentError
from service.pipeline.definition import CsvOptions, Pipeline
from service.pipeline.feed import MAX_RECORD_BYTES, UTF8_BOM, blank


def csv_head(
    pipeline: Pipeline, opts: CsvOptions, chunks: Iterator[bytes]
) -> tuple[list[str] | None, bytes, Iterator[bytes]]:
    """Column names, the text after the skipped lines and the header, and the chunks after it.

    Blank lines before the header are passed over, as pyarrow passes over blank lines between
    records: a file that starts with an empty line still has its header and all its rows.
    """
    skip = opts.skip_rows
    header: bytes | None = None if opts.header else b""
    rest = b""
    while skip or header is None:
        end = rest.find(b"\n")
        if end < 0:
            chunk = next(chunks, None)
            if chunk is not None:
                rest += chunk
                if len(rest) > MAX_RECORD_BYTES:
                    raise PermanentError(f"a line is longer than {MAX_RECORD_BYTES} bytes")
                continue
            if not rest:
                return None, b"", iter(())  # the file ends before its header: no rows
            end = len(rest)
        line, rest = rest[:end], rest[end + 1 :]
        if skip:
            skip -= 1
        elif not blank(line):
            header = line
    names: list[str] | None
    if not opts.header:
        computed = {t.column for t in pipeline.transforms if t.op in ("constant", "from_path")}
        names = [c.name for c in pipeline.table.columns if c.name not in computed]
    else:
        names = _header_names(header, opts)
    if names is None:
        return None, b"", iter(())
    return names, rest, chunks


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
