"""A CSV file's records in one pass of pyarrow's streaming reader, columns already typed.

The reader finds record boundaries itself (quoted newlines included) while it parses, so the
text is neither cut into blocks nor copied first: this is the parse stage's fast path, within
a few percent of the bare reader. It cannot step over a value that does not convert, nor take
a record longer than a block (a stray quote makes one of the rest of the file): the pass then
ends with ``Reread``, saying how many records were handed on, and the caller reads the file
again to parse the rest block by block (csv_format), where a bad value is one bad row and a
long record is cut where the block path cuts it.

pyarrow pulls the bytes through ``_Source`` in its own I/O thread, and would read 32 blocks
ahead; ``_Source`` lets it read only ``AHEAD`` blocks past the batch being handed on (unless
the parser waits for a batch without parsing: pyarrow needs one more), so what a unit holds
stays within the byte budget.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv

from service.pipeline import feed as blocks
from service.pipeline.batches import ParsedBatch, one_batch
from service.pipeline.context import BadRow, RowNumbers
from service.pipeline.feed import Feed

# Blocks pyarrow may have read past the batches handed on: the one it parses ahead, the one
# that may end its last record, and one more.
AHEAD = 3
# How long a read held at the gate waits before it looks whether the parser is starved.
STALL_SECONDS = 0.005


def reserve_io_threads(units: int) -> int:
    """At least a thread of pyarrow's I/O pool per unit in flight: each unit's reader pulls its
    bytes there, and a read may wait for its feed (or at the gate) while holding one. Returns
    the pool's size."""
    if pa.io_thread_count() < units:
        pa.set_io_thread_count(units)
    count: int = pa.io_thread_count()
    return count


class Reread(Exception):
    """The pass cannot go on; ``records`` records were handed on, ``unsettled`` bytes taken
    from the feed are not yet counted in any batch."""

    def __init__(self, records: int, unsettled: int, reason: str) -> None:
        super().__init__(reason)
        self.records = records
        self.unsettled = unsettled


class _Source:
    """The file object pyarrow reads: ``first``, then the chunks, joined up to what it asks."""

    closed = False

    def __init__(self, first: bytes, chunks: Iterator[bytes]) -> None:
        self._first = first
        self._chunks = chunks
        self._gate = threading.Condition()
        self._reads = 0  # reads pyarrow made
        self._batches = 0  # batches handed on
        self._parser: int | None = None  # CPU clock of the parser while it waits for a batch
        self._stopped = False

    def read(self, size: int = -1) -> bytes:
        with self._gate:
            while not (self._stopped or self._reads < self._batches + AHEAD):
                if self._starved():
                    break
            if self._stopped:
                return b""
            self._reads += 1
        return self._take(max(size, 1))

    def _starved(self) -> bool:
        """Waits a moment (the gate held); True when the parser waits for a batch and spent
        no CPU meanwhile: pyarrow needs more bytes than AHEAD blocks (a long record)."""
        clock = self._parser
        if clock is None:
            self._gate.wait()
            return False
        before = time.clock_gettime(clock)
        self._gate.wait(STALL_SECONDS)
        idle = time.clock_gettime(clock) - before < STALL_SECONDS / 4
        return idle and self._parser == clock

    def _take(self, size: int) -> bytes:
        parts, got = [], 0
        if self._first:
            parts.append(self._first[:size])
            got, self._first = len(parts[0]), self._first[size:]
        while got < size and (chunk := next(self._chunks, b"")):
            parts.append(chunk)
            got += len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def wanting(self, waiting: bool) -> None:
        """The parser starts (True) or stops (False) waiting for the reader's next batch; it
        parses in its own thread, so its CPU clock tells parsing from waiting for bytes."""
        with self._gate:
            self._parser = time.pthread_getcpuclockid(threading.get_ident()) if waiting else None
            if not waiting:
                self._batches += 1
            self._gate.notify_all()

    def stop(self) -> None:
        with self._gate:
            self._stopped = True
            self._gate.notify_all()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def streamed_batches(
    feed: Feed,
    first: bytes,
    chunks: Iterator[bytes],
    *,
    names: list[str],
    parse: pacsv.ParseOptions,
    convert: pacsv.ConvertOptions,
) -> Generator[ParsedBatch, None, None]:
    """The records of ``first`` and ``chunks`` (the text after the header) as batches.

    Rows of the wrong width are bad rows, numbered among the file's records as the block path
    numbers them; pyarrow reports them while it parses the block after the one it hands on,
    so each is given to the batch whose records span its number.
    """
    source = _Source(first, chunks)
    pending: list[BadRow] = []

    def invalid_row(row: pacsv.InvalidRow) -> str:
        reason = f"expected {row.expected_columns} columns, found {row.actual_columns}"
        pending.append(BadRow.clipped(row.number, reason, row.text))
        return "skip"

    parse.invalid_row_handler = invalid_row
    # Each read of about a block's bytes becomes one batch, as in the block path.
    size = blocks.BLOCK_BYTES
    read = pacsv.ReadOptions(use_threads=False, block_size=size, column_names=names)
    row, settled = 1, 0
    reader: pacsv.CSVStreamingReader | None = None
    try:
        while True:
            source.wanting(True)
            try:
                if reader is None:
                    reader = pacsv.open_csv(
                        pa.PythonFile(source, mode="r"),
                        read_options=read,
                        parse_options=parse,
                        convert_options=convert,
                    )
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                raise Reread(row - 1, feed.consumed - settled, str(exc)) from exc
            finally:
                source.wanting(False)
            bad = _spanned(pending, row, batch.num_rows)
            parsed = ParsedBatch(batch, _numbers(row, bad), bad, feed.consumed - settled)
            row, settled = row + parsed.records, feed.consumed
            yield parsed
        if pending and reader is not None:  # bad rows after the last good one
            rest = one_batch(reader.schema.empty_table())
            yield ParsedBatch(rest, _numbers(row, pending), list(pending), feed.consumed - settled)
    finally:
        source.stop()
        if reader is not None:
            reader.close()


def _spanned(pending: list[BadRow], first: int, rows: int) -> list[BadRow]:
    """Takes from ``pending`` the bad rows among a batch's records: before its last row."""
    if rows == 0:
        return []
    last = _numbers(first, pending).of(rows - 1)
    taken = [b for b in pending if b.row is not None and b.row <= last]
    del pending[: len(taken)]
    return taken


def _numbers(first: int, bad: list[BadRow]) -> RowNumbers:
    return RowNumbers(first, tuple(b.row for b in bad if b.row is not None))
