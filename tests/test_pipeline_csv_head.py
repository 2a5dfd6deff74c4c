"""The CSV head: skipped lines and the header, read from chunks that may cut any line."""

from __future__ import annotations

import pytest

from service.errors import PermanentError
from service.pipeline import csv_head as head_module
from service.pipeline.csv_head import csv_head, header_names
from service.pipeline.definition import CsvOptions
from tests.pipeline_support import chunks, pipeline


def head(data: bytes, size: int, opts: CsvOptions | None = None) -> tuple[object, bytes]:
    """The names, and every byte after the head, whatever the chunk size."""
    opts = opts or CsvOptions()
    names, first, rest = csv_head(pipeline(csv=opts), opts, chunks(data, size))
    return names, first + b"".join(rest)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_the_header_is_found_whatever_chunks_cut_it(size: int) -> None:
    data = b"id,name,amount,day\n1,a,2,2026-11-20\n"
    assert head(data, size) == (["id", "name", "amount", "day"], b"1,a,2,2026-11-20\n")


@pytest.mark.parametrize("size", [1, 5, 1000])
def test_skipped_lines_and_blank_lines_come_before_the_header(size: int) -> None:
    data = b"exported by x\n\n  \r\nid,name\n1,a\n"
    names, rest = head(data, size, CsvOptions(skip_rows=1))
    assert (names, rest) == (["id", "name"], b"1,a\n")


@pytest.mark.parametrize("data", [b"", b"\n\n", b"only the line to skip\n"])
def test_a_file_that_ends_before_its_header_has_no_rows(data: bytes) -> None:
    assert head(data, 3, CsvOptions(skip_rows=1)) == (None, b"")


def test_a_header_without_a_newline_ends_the_file() -> None:
    assert head(b"id,name", 3) == (["id", "name"], b"")


def test_without_a_header_the_names_come_from_the_schema_and_nothing_is_read() -> None:
    names, rest = head(b"1,a,2,2026-11-20\n", 4, CsvOptions(header=False))
    assert names == ["id", "name", "amount", "day"]
    assert rest == b"1,a,2,2026-11-20\n"


def test_a_header_longer_than_a_record_may_be_fails_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(head_module, "MAX_RECORD_BYTES", 100)
    with pytest.raises(PermanentError, match="longer than 100 bytes"):
        head(b"x" * 500 + b"\n1\n", 10)


def test_header_names_in_the_first_bytes() -> None:
    opts = CsvOptions()
    assert header_names(b'\xef\xbb\xbfa,"b",c\n1,2,3\n', opts) == ["a", "b", "c"]
    assert header_names(b"a,b", opts) is None  # the line may go on
    with pytest.raises(PermanentError, match="twice"):
        header_names(b"a,a\n", opts)
