"""The feed's byte level: record blocks (quotes, long records) and encodings to UTF-8."""

from __future__ import annotations

import codecs
import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.errors import PermanentError
from service.pipeline import feed
from service.pipeline.feed import VECTOR_COUNT_BYTES, count_byte, record_blocks, utf8_chunks
from tests.pipeline_support import chunks


@pytest.mark.parametrize("quote", [None, b'"'])
def test_blocks_end_on_record_boundaries(
    monkeypatch: pytest.MonkeyPatch, quote: bytes | None
) -> None:
    monkeypatch.setattr(feed, "BLOCK_BYTES", 100)
    data = b"".join(
        b'%d,"line\nwith %d"\n' % (i, i) if quote else b"%d,x\n" % i for i in range(500)
    )
    blocks = list(record_blocks(chunks(data, 37), quote))
    assert b"".join(blocks) == data
    assert len(blocks) > 10
    assert all(block.endswith(b"\n") for block in blocks)
    if quote:
        assert all(block.count(b'"') % 2 == 0 for block in blocks)


def test_a_record_longer_than_a_block_makes_a_longer_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "BLOCK_BYTES", 100)
    long_line = b"1," + b"x" * 10_000 + b"\n"
    blocks = list(record_blocks(chunks(b"0,a\n" + long_line + b"2,b\n", 64), None))
    assert long_line in b"".join(blocks)
    assert any(long_line in block for block in blocks)


def test_a_record_over_the_limit_fails_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "BLOCK_BYTES", 100)
    monkeypatch.setattr(feed, "MAX_RECORD_BYTES", 1000)
    with pytest.raises(PermanentError, match="longer than 1000 bytes"):
        list(record_blocks(chunks(b"x" * 5000, 64), None))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1"])
def test_encodings_become_utf8_without_a_bom(encoding: str) -> None:
    original = "id,name\n1,Émilie\n2,Zürich\n"
    raw = original.encode(encoding)
    if encoding == "utf-16-le":
        raw = codecs.BOM_UTF16_LE + raw
    if encoding == "utf-8":
        raw = codecs.BOM_UTF8 + raw
    out = b"".join(utf8_chunks(chunks(raw, 3), encoding))
    assert out.decode("utf-8") == original


def test_bytes_that_are_not_the_declared_encoding_fail_the_file() -> None:
    with pytest.raises(PermanentError, match="not valid utf-16"):
        list(utf8_chunks(iter([b"\x00\xd8\x41"]), "utf-16-le"))


def test_a_stray_quote_does_not_swallow_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "BLOCK_BYTES", 100)
    monkeypatch.setattr(feed, "STRAY_QUOTE_BYTES", 400)
    data = b'1,5" screen\n' + b"".join(b"%d,plain\n" % i for i in range(500))
    blocks = list(record_blocks(chunks(data, 50), b'"'))
    assert b"".join(blocks) == data
    assert max(len(b) for b in blocks) < 600


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(st.text(alphabet='ab,"\n', max_size=12), min_size=1, max_size=60),
    block=st.integers(min_value=1, max_value=64),
    chunk=st.integers(min_value=1, max_value=40),
)
def test_blocks_never_split_a_record(
    monkeypatch: pytest.MonkeyPatch, values: list[str], block: int, chunk: int
) -> None:
    """Whatever the block and chunk sizes, each block holds whole records (as Python's csv
    module reads them), and together the blocks are the file."""
    monkeypatch.setattr(feed, "BLOCK_BYTES", block)
    sink = io.StringIO()
    writer = csv.writer(sink, lineterminator="\n")
    for i, value in enumerate(values):
        writer.writerow([i, value])
    data = sink.getvalue().encode()
    blocks = list(record_blocks(chunks(data, chunk), b'"'))
    assert b"".join(blocks) == data
    records = [row for b in blocks for row in csv.reader(io.StringIO(b.decode()))]
    assert records == [[str(i), v] for i, v in enumerate(values)]


@pytest.mark.parametrize("size", [0, 1, 1000, VECTOR_COUNT_BYTES, 3 * VECTOR_COUNT_BYTES + 7])
def test_counting_a_byte_agrees_with_bytes_count(size: int) -> None:
    data = bytes((i * 31 + i // 7) % 256 for i in range(size))
    for byte in (b'"', b"'", b"\x00", b"\xff"):
        assert count_byte(data, byte) == data.count(byte)
    assert count_byte(data, b"ab") == data.count(b"ab")  # not one byte: counted as text
