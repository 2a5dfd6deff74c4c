"""Row numbers of a batch's rows, with records dropped at parse time in between."""

from __future__ import annotations

from service.pipeline.context import MAX_RAW_CHARS, BadRow, RowNumbers


def test_rows_without_gaps_count_on_from_the_first() -> None:
    rows = RowNumbers(101)
    assert [rows.of(i) for i in range(3)] == [101, 102, 103]


def test_dropped_records_are_skipped_over() -> None:
    rows = RowNumbers(1, skipped=(2, 3, 6))
    assert [rows.of(i) for i in range(5)] == [1, 4, 5, 7, 8]


def test_a_huge_raw_row_is_clipped_in_the_quarantine() -> None:
    bad = BadRow.clipped(1, "too long", "x" * (MAX_RAW_CHARS + 10))
    assert len(bad.raw) < MAX_RAW_CHARS + 50
    assert bad.raw.endswith("[10 more characters]")
