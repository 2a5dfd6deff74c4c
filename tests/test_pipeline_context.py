"""Row numbers of a batch's rows (with records dropped at parse time in between), clipped raw
rows, and the gzip rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.models import EventMeta, ObjectInfo, ObjectRef, UnitKey
from service.pipeline.context import GZIP_MAGIC, MAX_RAW_CHARS, BadRow, RowNumbers, UnitContext
from service.pipeline.definition import Compression
from tests.pipeline_support import pipeline


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


@pytest.mark.parametrize(
    ("compression", "name", "encoding", "head", "declared", "gzip"),
    [
        ("auto", "a.csv.gz", None, b"id", True, True),
        ("auto", "a.csv", "gzip", b"id", True, True),
        ("auto", "a.csv", None, GZIP_MAGIC + b"..", None, True),
        ("auto", "a.csv", None, b"id", None, False),
        ("none", "a.csv.gz", None, GZIP_MAGIC, False, False),
        ("gzip", "a.csv", None, b"id", True, True),
    ],
)
def test_the_gzip_rule(
    *,
    compression: Compression,
    name: str,
    encoding: str | None,
    head: bytes,
    declared: bool | None,
    gzip: bool,
) -> None:
    info = ObjectInfo(ObjectRef("landing", name, 1), 10, content_encoding=encoding)
    ctx = UnitContext(
        UnitKey("orders", "landing", name, 1),
        pipeline(compression=compression),
        info,
        EventMeta("e", "t", "s"),
        datetime(2026, 11, 20, tzinfo=UTC),
    )
    assert ctx.declared_gzip is declared  # known before reading: the gs:// fast path asks
    assert ctx.is_gzip(head) is gzip
