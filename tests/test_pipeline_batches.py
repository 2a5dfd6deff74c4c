"""Parsed batches: the records after those a first pass handed on."""

from __future__ import annotations

import pyarrow as pa

from service.pipeline.batches import ParsedBatch, records_after
from service.pipeline.context import BadRow, RowNumbers


def parsed(first: int, ids: list[int], bad: list[int], raw: int) -> ParsedBatch:
    batch = pa.RecordBatch.from_pydict({"id": ids})
    rows = [BadRow(n, "bad", "") for n in bad]
    return ParsedBatch(batch, RowNumbers(first, tuple(bad)), rows, raw)


def test_records_after_a_point_keep_their_numbers_and_the_bytes_of_those_left_out() -> None:
    # Records 1-4 (3 bad), 5-9 (6 and 8 bad), 10-11.
    batches = [
        parsed(1, [1, 2, 4], [3], 100),
        parsed(5, [5, 7, 9], [6, 8], 200),
        parsed(10, [10, 11], [], 50),
    ]
    kept = list(records_after(iter(batches), 6))
    assert [b.batch.column("id").to_pylist() for b in kept] == [[7, 9], [10, 11]]
    assert [b.rows.first for b in kept] == [7, 10]
    assert [[b.rows.of(i) for i in range(b.batch.num_rows)] for b in kept] == [[7, 9], [10, 11]]
    assert [[bad.row for bad in b.bad] for b in kept] == [[8], []]
    assert [b.records for b in kept] == [3, 2]
    assert [b.raw_bytes for b in kept] == [300, 50]  # the first batch's bytes go with the next


def test_nothing_is_left_out_after_no_record() -> None:
    batches = [parsed(1, [1, 2], [], 10)]
    assert list(records_after(iter(batches), 0)) == batches
