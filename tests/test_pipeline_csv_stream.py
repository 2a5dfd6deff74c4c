"""The streamed CSV pass: the same rows, bad rows and numbers as the block path, a re-read
from the first record it could not hand on, and reads held to a few blocks ahead."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Generator, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.models import Column, TableSpec
from service.pipeline import csv_stream, feed
from service.pipeline.batches import ParsedBatch
from service.pipeline.csv_stream import Reread, streamed_batches
from service.pipeline.definition import Pipeline
from service.pipeline.feed import Feed
from service.pipeline.parse import parse_batches
from service.pipeline.transform import Transformer
from tests.pipeline_support import TABLE, csv_rows, full_feed, parse_all, pipeline, rows_of
from tests.test_pipeline_transform import context


def numbered(batches: list[ParsedBatch]) -> tuple[list[int], list[tuple[int | None, str]]]:
    """Each good row's number, and each bad row's number and reason."""
    rows = [b.rows.of(i) for b in batches for i in range(b.batch.num_rows)]
    return rows, [(bad.row, bad.reason) for b in batches for bad in b.bad]


def records_in(batches: list[ParsedBatch]) -> int:
    return sum(b.records for b in batches)


# Good rows, rows of the wrong width, blank lines and a quoted newline, mixed.
MIXED = [
    f"{i},n{i},1,2026-11-20"
    if i % 7
    else (f"{i},short" if i % 2 else f'{i},"two\nlines",1,2026-11-20\n')
    for i in range(1, 400)
]


@pytest.mark.parametrize("chunk", [17, 100, 4096])
async def test_the_streamed_pass_numbers_rows_and_bad_rows_as_the_block_path(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(feed, "BLOCK_BYTES", 256)
    data = csv_rows(*MIXED)
    streamed = await parse_all(pipeline(), data, chunk=chunk)
    blocks = await parse_all(pipeline(), data, chunk=chunk, streamed=False)
    assert len(streamed) > 10
    assert rows_of(streamed) == rows_of(blocks)
    assert numbered(streamed) == numbered(blocks)
    assert [n for n, _ in numbered(streamed)[1]] == list(range(7, 400, 14))
    assert streamed[0].batch.schema.field("id").type == pa.int64()


async def test_bad_rows_after_the_last_good_row_come_in_a_batch_of_their_own() -> None:
    data = csv_rows("1,a,1,2026-11-20", "2,short", "3")
    batches = await parse_all(pipeline(), data)
    assert [b.batch.num_rows for b in batches] == [1, 0]
    assert numbered(batches) == (
        [1],
        [(2, "expected 4 columns, found 2"), (3, "expected 4 columns, found 1")],
    )
    assert records_in(batches) == 3


async def rereading(data: bytes, chunk: int) -> tuple[list[ParsedBatch], list[int]]:
    """Parsed with a re-read that is counted (the bytes no batch had, at each call)."""
    loop = asyncio.get_running_loop()
    calls: list[int] = []

    def reread(unsettled: int) -> Feed:
        calls.append(unsettled)
        return full_feed(loop, data, chunk)

    batches = parse_batches(pipeline(), full_feed(loop, data, chunk), None, None, reread)
    return await asyncio.to_thread(list, batches), calls


async def read_again_as_the_block_path_reads(
    lines: list[str],
) -> tuple[list[ParsedBatch], list[int]]:
    """Parsed streamed: re-read once, with the rows, numbers and bad rows of the block path."""
    data = csv_rows(*lines)
    batches, calls = await rereading(data, 100)
    blocks = await parse_all(pipeline(), data, chunk=100, streamed=False)
    assert len(calls) == 1
    assert rows_of(batches) == rows_of(blocks)
    assert numbered(batches) == numbered(blocks)
    return batches, calls


async def test_a_value_that_does_not_convert_has_the_rest_read_again_block_by_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feed, "BLOCK_BYTES", 256)
    lines = list(MIXED)
    lines[300] = "301,typo,1,2026-13-45"  # no such day
    data = csv_rows(*lines)
    batches, calls = await read_again_as_the_block_path_reads(lines)
    assert records_in(batches) == 399
    types = [b.batch.schema.field("day").type for b in batches]
    assert types[0] == pa.date32()  # streamed, typed
    assert pa.binary() in types  # the block with the typo: as bytes, for validate to judge
    # Every byte of the second read is counted by a batch; of the first read's, those no
    # batch counted go back to the budget at the re-read (``calls``).
    assert len(data) < sum(b.raw_bytes for b in batches) + calls[0] <= 2 * len(data)


async def test_a_value_that_fails_in_the_first_block_is_read_again_from_the_start() -> None:
    data = csv_rows("x,a,1,2026-11-20", "2,b,1,2026-11-20")
    batches, calls = await rereading(data, 7)
    assert len(calls) == 1
    assert [r["id"] for r in rows_of(batches)] == [b"x", b"2"]
    assert numbered(batches) == ([1, 2], [])


def counted_pass(rows: int, pulled: list[int]) -> Generator[ParsedBatch, None, None]:
    """A streamed pass over ``rows`` records sent 64 bytes a chunk; ``pulled`` gets the
    offset of every chunk pyarrow asks for."""
    body = b"".join(b"%d,n%d,1,2026-11-20\n" % (i, i) for i in range(rows))

    def counted() -> Iterator[bytes]:
        for start in range(0, len(body), 64):
            pulled.append(start)
            yield body[start : start + 64]

    names = ["id", "name", "amount", "day"]
    types = {"id": pa.int64(), "name": pa.string(), "amount": pa.binary(), "day": pa.date32()}
    parse = pacsv.ParseOptions(newlines_in_values=True)
    convert = pacsv.ConvertOptions(column_types=types)
    source = Feed(asyncio.get_running_loop())
    return streamed_batches(source, b"", counted(), names=names, parse=parse, convert=convert)


@pytest.mark.parametrize("ahead", [csv_stream.AHEAD, 1000], ids=["held", "unheld"])
async def test_pyarrow_reads_only_a_few_blocks_past_the_batches_handed_on(
    monkeypatch: pytest.MonkeyPatch, ahead: int
) -> None:
    """However many batches were taken: pyarrow reads one block per batch, and its readahead
    (32 blocks of its own) stays AHEAD blocks past them."""
    monkeypatch.setattr(feed, "BLOCK_BYTES", 256)
    monkeypatch.setattr(csv_stream, "AHEAD", ahead)
    pulled: list[int] = []
    batches = counted_pass(5000, pulled)
    for _ in range(10):
        await asyncio.to_thread(next, batches)
        await asyncio.sleep(0.05)  # room for pyarrow's I/O thread to read as far as it may
    read = len(pulled) * 64
    await asyncio.to_thread(batches.close)
    bound = (10 + csv_stream.AHEAD + 1) * 256  # a block a batch, AHEAD more, one escaped
    if ahead == csv_stream.AHEAD:
        assert read <= bound
    else:
        assert read > 2 * bound  # unheld, pyarrow reads far ahead: the bound above can fail


async def test_a_record_longer_than_a_block_is_read_again_block_by_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pyarrow's streaming reader takes no record longer than its block; the block path
    takes records up to MAX_RECORD_BYTES."""
    monkeypatch.setattr(feed, "BLOCK_BYTES", 256)
    lines = [f"{i},n{i},1,2026-11-20" for i in range(1, 60)]
    lines[30] = f'31,"{"long " * 1000}",1,2026-11-20'
    data = csv_rows(*lines)
    batches, calls = await rereading(data, 100)
    assert len(calls) == 1
    assert [len(str(r["name"])) for r in rows_of(batches)][30] == 5000
    assert numbered(batches) == (list(range(1, 60)), [])


async def test_a_text_with_no_end_of_record_in_sight_is_read_again_block_by_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stray quote opens a value that never closes: the streamed pass stops within a block,
    and the block path cuts at plain newlines."""
    monkeypatch.setattr(feed, "BLOCK_BYTES", 256)
    monkeypatch.setattr(feed, "STRAY_QUOTE_BYTES", 1024)
    lines = [f"{i},n{i},1,2026-11-20" for i in range(1, 300)]
    lines[10] = '11,"stray,1,2026-11-20'
    await read_again_as_the_block_path_reads(lines)


async def test_a_pass_given_up_midway_lets_pyarrow_go(monkeypatch: pytest.MonkeyPatch) -> None:
    """Closed while pyarrow's I/O thread is held at the gate: the close returns, and nothing
    more is read."""
    monkeypatch.setattr(feed, "BLOCK_BYTES", 256)
    pulled: list[int] = []
    batches = counted_pass(2000, pulled)
    await asyncio.to_thread(next, batches)
    await asyncio.wait_for(asyncio.to_thread(batches.close), timeout=30)
    read = len(pulled)
    await asyncio.sleep(0.1)
    assert len(pulled) == read < 2000 * 20 // 64


def test_reread_says_where_to_go_on() -> None:
    again = Reread(12, 300, "no such day")
    assert (again.records, again.unsettled, str(again)) == (12, 300, "no such day")


def rarely(good: st.SearchStrategy[str], bad: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``bad`` one time in ten: most files then stream some way before their first typo."""
    return st.integers(0, 9).flatmap(lambda k: bad if k == 0 else good)


# Values of the typed table's columns: good ones, and the typos a hand-edited feed carries.
ids = rarely(
    st.integers(-(10**12), 10**12).map(str), st.sampled_from(["", "x1", "1.5", " 7", "9" * 30])
)
names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00\r"), max_size=10
) | st.sampled_from(['"', "a,b", "two\nlines", '"quoted"'])
amounts = rarely(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["", "1,5", "abc", "1e400"]),
)
days = rarely(st.dates().map(str), st.sampled_from(["", "2026-13-45", "20/11/2026", "2026-02-30"]))
records = st.lists(
    st.integers(0, 9).flatmap(
        lambda k: (
            st.lists(names, min_size=1, max_size=6)  # a row of the wrong width
            if k == 0
            else st.tuples(ids, names, amounts, days).map(list)
        )
    ),
    max_size=80,
)
TYPED = TableSpec(
    TABLE,
    (
        Column("id", "INTEGER"),
        Column("name", "STRING"),
        Column("amount", "FLOAT"),
        Column("day", "DATE"),
    ),
)


def validated(
    p: Pipeline, batches: list[ParsedBatch]
) -> tuple[list[dict[str, object]], list[tuple[int, str]]]:
    """The rows the validate stage passes, and every bad row's number and reason."""
    transformer = Transformer(context(p))
    done = [transformer(b.batch, b.rows) for b in batches]
    rows = [row for t in done for row in t.batch.to_pylist()]
    bad = sorted(
        (r.row or 0, r.reason) for b, t in zip(batches, done, strict=True) for r in b.bad + t.bad
    )
    return rows, bad


@settings(derandomize=True, deadline=None, database=None, max_examples=80)
@given(
    rows=records,
    blank_every=st.integers(0, 7),
    block=st.sampled_from([64, 128, 1024]),
    chunk=st.integers(1, 300),
)
def test_the_streamed_pass_and_the_block_path_validate_to_the_same_rows_and_reasons(
    rows: list[list[str]], blank_every: int, block: int, chunk: int
) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["id", "name", "amount", "day"])
    for i, row in enumerate(rows):
        if blank_every and i % blank_every == 0:
            text.write("\n")
        writer.writerow(row)
    data = text.getvalue().encode()
    p = pipeline(table=TYPED)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(feed, "BLOCK_BYTES", block)
        streamed = asyncio.run(parse_all(p, data, chunk=chunk))
        blocks = asyncio.run(parse_all(p, data, chunk=chunk, streamed=False))
    assert numbered(streamed) == numbered(blocks)
    assert validated(p, streamed) == validated(p, blocks)
    assert records_in(streamed) == records_in(blocks) == len(rows)


def test_pyarrows_io_pool_has_a_thread_for_every_unit_in_flight() -> None:
    before = pa.io_thread_count()
    try:
        assert csv_stream.reserve_io_threads(before + 5) == before + 5
        assert csv_stream.reserve_io_threads(1) == before + 5  # never shrunk
    finally:
        pa.set_io_thread_count(before)
