"""CSV: header, options, typed columns with a fall-back to bytes, bad rows numbered in the file."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest

from service.models import Column, TableSpec
from service.pipeline import feed
from service.pipeline.batches import ParsedBatch
from service.pipeline.csv_format import NAIVE, _CsvBlocks
from service.pipeline.definition import CsvOptions
from service.pipeline.transform import Transformer
from tests.pipeline_support import TABLE, csv_rows, parse_all, pipeline, rows_of, text
from tests.test_pipeline_transform import context


async def test_csv_header_names_the_columns_and_types_come_from_the_schema() -> None:
    data = csv_rows("1,a,2.50,2026-11-20", "2,,,")
    [batch] = await parse_all(pipeline(), data)
    assert batch.batch.schema.field("id").type == pa.int64()
    assert batch.batch.schema.field("day").type == pa.date32()
    assert batch.batch.schema.field("amount").type == pa.binary()  # NUMERIC: validated later
    assert rows_of([batch])[1] == {"id": 2, "name": None, "amount": None, "day": None}


async def test_a_value_that_does_not_convert_leaves_the_block_as_bytes() -> None:
    [batch] = await parse_all(pipeline(), csv_rows("1,a,1,2026-11-20", "x,b,2,2026-11-21"))
    assert batch.batch.schema.field("id").type == pa.binary()
    assert [r["id"] for r in rows_of([batch])] == [b"1", b"x"]


async def test_wrong_column_counts_are_bad_rows_numbered_in_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feed, "BLOCK_BYTES", 64)
    lines = [f"{i},n{i},1,2026-11-20" for i in range(1, 41)]
    lines[4] = "5,short"
    lines[30] = "31,a,b,c,d,e"
    batches = await parse_all(pipeline(), csv_rows(*lines), chunk=50)
    assert len(batches) > 3
    bad = [(b.row, b.reason) for batch in batches for b in batch.bad]
    assert bad == [(5, "expected 4 columns, found 2"), (31, "expected 4 columns, found 6")]
    assert sum(b.records for b in batches) == 40
    # The row numbers of good rows skip the dropped ones.
    numbered = [b.rows.of(i) for b in batches for i in range(b.batch.num_rows)]
    assert numbered == [n for n in range(1, 41) if n not in (5, 31)]


async def test_csv_options_delimiter_quotes_nulls_skip_rows_and_no_header() -> None:
    opts = CsvOptions(delimiter=";", header=False, null_values=("NA",), skip_rows=2)
    data = b"title line\nanother\n1;\"a;b\";NA;2026-11-20\n2;'q';3;NA\n"
    rows = rows_of(await parse_all(pipeline(csv=opts), data))
    assert [text(r["name"]) for r in rows] == ["a;b", "'q'"]
    assert rows[0]["amount"] is None and rows[1]["day"] is None


async def test_quoting_can_be_turned_off() -> None:
    opts = CsvOptions(quote_char="")
    rows = rows_of(await parse_all(pipeline(csv=opts), csv_rows('1,"x",,')))
    assert rows[0]["name"] == '"x"'


async def test_quoted_newlines_are_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "BLOCK_BYTES", 16)
    data = csv_rows(*[f'{i},"line {i}\nand more",,' for i in range(50)])
    rows = rows_of(await parse_all(pipeline(), data, chunk=7))
    assert [r["name"] for r in rows] == [f"line {i}\nand more" for i in range(50)]


@pytest.mark.parametrize("data", [b"", b"\n\n", b"id,name,amount,day\n", b"id,name,amount,day"])
async def test_empty_and_header_only_files_have_no_rows(data: bytes) -> None:
    assert sum(b.records for b in await parse_all(pipeline(), data)) == 0


@pytest.mark.parametrize("lead", [b"\n", b"   \r\n", b"\r\n", b"\n\n \t\n"])
async def test_blank_lines_before_the_header_keep_every_row(lead: bytes) -> None:
    rows = rows_of(await parse_all(pipeline(), lead + csv_rows("1,a,,", "2,b,,")))
    assert [(r["id"], r["name"]) for r in rows] == [(1, "a"), (2, "b")]


async def test_skip_rows_count_lines_and_blank_lines_after_them_are_passed_over() -> None:
    opts = CsvOptions(skip_rows=1)
    rows = rows_of(await parse_all(pipeline(csv=opts), b"title\n\n" + csv_rows("7,x,,")))
    assert [r["id"] for r in rows] == [7]


@pytest.mark.parametrize("rows", [("   ",), ("1,a,,", "   ", "2,b,,")], ids=["alone", "among"])
async def test_a_line_of_spaces_is_a_bad_row_wherever_it_stands(rows: tuple[str, ...]) -> None:
    # A block holding nothing but that line was skipped as blank: the row vanished uncounted.
    batches = await parse_all(pipeline(), csv_rows(*rows))
    assert sum(b.records for b in batches) == len(rows)
    assert [b.reason for batch in batches for b in batch.bad] == ["expected 4 columns, found 1"]


async def test_blocks_parsed_in_parallel_come_out_in_order_and_numbered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feed, "BLOCK_BYTES", 200)
    lines = [f"{i},n{i},1,2026-11-20" if i % 7 else f"{i},short" for i in range(1, 3001)]
    data = csv_rows(*lines)
    alone = await parse_all(pipeline(), data, chunk=100)
    with ThreadPoolExecutor(2) as workers:
        together = await parse_all(pipeline(), data, chunk=100, workers=workers)
    assert len(together) > 10
    assert rows_of(together) == rows_of(alone)
    numbered = [b.rows.of(i) for b in together for i in range(b.batch.num_rows)]
    assert numbered == [n for n in range(1, 3001) if n % 7]
    assert [b.row for batch in together for b in batch.bad] == list(range(7, 3001, 7))


# A table with a timestamp, for the tests of how timestamps are read.
STAMPED = TableSpec(TABLE, (Column("id", "INTEGER"), Column("at", "TIMESTAMP")))


async def stamped_batches(
    monkeypatch: pytest.MonkeyPatch, values: list[str], *, streamed: bool = False
) -> list[ParsedBatch]:
    monkeypatch.setattr(feed, "BLOCK_BYTES", 64)  # a few rows a block
    data = csv_rows(*(f"{i},{v}" for i, v in enumerate(values, 1)), header="id,at")
    return await parse_all(pipeline(table=STAMPED), data, chunk=40, streamed=streamed)


@pytest.mark.parametrize(
    ("written", "kind"),
    [("2026-11-20T10:00:00Z", pa.timestamp("us", tz="UTC")), ("2026-11-20 10:00:00", NAIVE)],
)
async def test_timestamps_are_read_by_the_reader_once_the_first_block_shows_their_zone(
    monkeypatch: pytest.MonkeyPatch, written: str, kind: pa.DataType
) -> None:
    batches = await stamped_batches(monkeypatch, [written] * 12)
    types = [b.batch.schema.field("at").type for b in batches]
    assert len(types) > 2
    assert types[0] == pa.binary()  # the first block is judged
    assert set(types[1:]) == {kind}
    # The streamed pass judges by the first records before it starts: every batch is typed.
    streamed = await stamped_batches(monkeypatch, [written] * 12, streamed=True)
    assert len(streamed) > 2
    assert {b.batch.schema.field("at").type for b in streamed} == {kind}


async def test_a_block_whose_timestamps_do_not_fit_is_read_as_text_and_so_is_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = ["2026-11-20T10:00:00Z"] * 6 + ["2026-11-20 11:00:00"] + ["2026-11-20T12:00:00Z"] * 6
    batches = await stamped_batches(monkeypatch, values)
    types = [b.batch.schema.field("at").type for b in batches]
    first_text = next(i for i, t in enumerate(types[1:], 1) if t == pa.binary())
    assert pa.types.is_timestamp(types[1])
    assert set(types[first_text:]) == {pa.binary()}


@pytest.mark.parametrize(
    ("values", "read_as_timestamps"),
    [
        (["2026-11-20T10:00:00Z", "2026-11-20T11:00:00+01:00"] * 8, True),
        (["2026-11-20 10:00:00.250", "2026-11-20T10:00:00"] * 8, True),
        (["2026-11-20T10:00:00Z"] * 7 + ["2026-11-20 10:00:00", " 2026-11-20 10:00 "] * 4, True),
        (["", "2026-11-20T10:00:00Z", "not a time"] * 5, False),  # every block has a bad one
    ],
    ids=["zoned", "naive", "mixed", "bad"],
)
@pytest.mark.parametrize("streamed", [False, True], ids=["blocks", "streamed"])
async def test_timestamps_read_by_the_reader_are_what_the_validate_stage_makes_of_text(
    monkeypatch: pytest.MonkeyPatch, values: list[str], read_as_timestamps: bool, streamed: bool
) -> None:
    batches = await stamped_batches(monkeypatch, values, streamed=streamed)
    stamped = [pa.types.is_timestamp(b.batch.schema.field("at").type) for b in batches]
    assert any(stamped) is read_as_timestamps
    p = pipeline(table=STAMPED)
    read = [Transformer(context(p))(b.batch, b.rows) for b in batches]
    monkeypatch.setattr(_CsvBlocks, "_judge_zones", lambda self, batch, typed: None)  # text only
    as_text = [
        Transformer(context(p))(b.batch, b.rows) for b in await stamped_batches(monkeypatch, values)
    ]
    assert [r for t in read for r in t.batch.to_pylist()] == [
        r for t in as_text for r in t.batch.to_pylist()
    ]
    assert [b.reason for t in read for b in t.bad] == [b.reason for t in as_text for b in t.bad]
