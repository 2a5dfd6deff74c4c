"""Parsed batches, and parsing a file's blocks several at once while keeping file order."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace

import pyarrow as pa

from service.pipeline.context import BadRow, RowNumbers
from service.pipeline.feed import Feed, blank

# Blocks parsed ahead of the one being handed on (with parallel workers).
PARSE_AHEAD = 1
# Parses one block; bad rows are numbered from the block's first record (1).
BlockParser = Callable[[bytes], tuple[pa.RecordBatch, list[BadRow]]]
# Called from the parse thread: the file's bytes again from the start, in a new feed; the
# argument is how many bytes of the old feed no batch accounts for (they go back to the budget).
Reopen = Callable[[int], Feed]


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


def in_order(
    blocks: Iterator[bytes],
    parse: BlockParser,
    feed: Feed,
    workers: Executor | None,
    no_records: Callable[[bytes], bool] = blank,
) -> Iterator[ParsedBatch]:
    """Parse blocks (several at once when ``workers`` is given), yield them in file order.

    Blocks are numbered from 1 while parsed and renumbered here, once the records of every
    earlier block are known. A block that ``no_records`` says holds none is not parsed.
    """
    ahead: deque[tuple[Future[tuple[pa.RecordBatch, list[BadRow]]], int]] = deque()
    row = 1
    attributed = 0
    for block in blocks:
        if no_records(block):
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


def records_after(batches: Iterator[ParsedBatch], done: int) -> Iterator[ParsedBatch]:
    """The batches' records after the first ``done``, numbered as before; the input bytes of
    the records left out are counted with the first batch that follows."""
    unsettled = 0
    for parsed in batches:
        last = parsed.rows.first + parsed.records - 1
        if last <= done:
            unsettled += parsed.raw_bytes
            continue
        kept = _from_record(parsed, done + 1) if parsed.rows.first <= done else parsed
        yield replace(kept, raw_bytes=kept.raw_bytes + unsettled)
        unsettled = 0


def _from_record(parsed: ParsedBatch, first: int) -> ParsedBatch:
    """The part of ``parsed`` from record number ``first`` on."""
    skipped = parsed.rows.skipped
    dropped = (first - parsed.rows.first) - sum(1 for s in skipped if s < first)
    return ParsedBatch(
        parsed.batch.slice(dropped),
        RowNumbers(first, tuple(s for s in skipped if s >= first)),
        [b for b in parsed.bad if b.row is None or b.row >= first],
        parsed.raw_bytes,
    )


def one_batch(table: pa.Table) -> pa.RecordBatch:
    batches = table.combine_chunks().to_batches()
    if batches:
        return batches[0]
    return pa.RecordBatch.from_arrays(
        [pa.array([], f.type) for f in table.schema], schema=table.schema
    )
