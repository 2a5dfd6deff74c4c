"""parse: blocks of whole records, encodings, and every format into Arrow batches."""

from __future__ import annotations

import codecs
import io
import json
from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.errors import PermanentError
from service.pipeline import parse
from service.pipeline.config import CsvOptions
from service.pipeline.parse import header_names, record_blocks, utf8_chunks
from tests.pipeline_support import chunks, csv_rows, parse_all, pipeline


def rows_of(batches: list[parse.ParsedBatch]) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    for b in batches:
        found.extend(pa.Table.from_batches([b.batch]).to_pylist())
    return found


def text(value: object) -> object:
    return value.decode() if isinstance(value, bytes) else value


@pytest.mark.parametrize("quote", [None, b'"'])
def test_blocks_end_on_record_boundaries(
    monkeypatch: pytest.MonkeyPatch, quote: bytes | None
) -> None:
    monkeypatch.setattr(parse, "BLOCK_BYTES", 100)
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
    monkeypatch.setattr(parse, "BLOCK_BYTES", 100)
    long_line = b"1," + b"x" * 10_000 + b"\n"
    blocks = list(record_blocks(chunks(b"0,a\n" + long_line + b"2,b\n", 64), None))
    assert long_line in b"".join(blocks)
    assert any(long_line in block for block in blocks)


def test_a_record_over_the_limit_fails_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse, "BLOCK_BYTES", 100)
    monkeypatch.setattr(parse, "MAX_RECORD_BYTES", 1000)
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
    monkeypatch.setattr(parse, "BLOCK_BYTES", 64)
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
    monkeypatch.setattr(parse, "BLOCK_BYTES", 16)
    data = csv_rows(*[f'{i},"line {i}\nand more",,' for i in range(50)])
    rows = rows_of(await parse_all(pipeline(), data, chunk=7))
    assert [r["name"] for r in rows] == [f"line {i}\nand more" for i in range(50)]


def test_a_stray_quote_does_not_swallow_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse, "BLOCK_BYTES", 100)
    monkeypatch.setattr(parse, "STRAY_QUOTE_BYTES", 400)
    data = b'1,5" screen\n' + b"".join(b"%d,plain\n" % i for i in range(500))
    blocks = list(record_blocks(chunks(data, 50), b'"'))
    assert b"".join(blocks) == data
    assert max(len(b) for b in blocks) < 600


@pytest.mark.parametrize("data", [b"", b"\n\n", b"id,name,amount,day\n", b"id,name,amount,day"])
async def test_empty_and_header_only_files_have_no_rows(data: bytes) -> None:
    assert sum(b.records for b in await parse_all(pipeline(), data)) == 0


def test_header_names_in_the_first_bytes() -> None:
    opts = CsvOptions()
    assert header_names(b'\xef\xbb\xbfa,"b",c\n1,2,3\n', opts) == ["a", "b", "c"]
    assert header_names(b"a,b", opts) is None  # the line may go on
    with pytest.raises(PermanentError, match="twice"):
        header_names(b"a,a\n", opts)


async def test_ndjson_bad_lines_are_quarantined_not_fatal() -> None:
    lines = [
        b'{"id": 1, "name": "a", "amount": 1.5}',
        b"{not json",
        b"",
        b'{"id": 3, "extra": true}',
        b'{"id": 4, "name": {"nested": 1}}',
        b"[1, 2]",
        b'{"id": "6", "amount": "2.25", "day": "2026-11-20"}',
    ]
    batches = await parse_all(pipeline(format="ndjson"), b"\n".join(lines) + b"\n")
    bad = [(b.row, b.reason.split(":")[0]) for batch in batches for b in batch.bad]
    assert bad == [
        (2, "not valid JSON"),
        (3, "unknown field 'extra'"),
        (4, "name"),
        (5, "not a JSON object"),
    ]
    rows = rows_of(batches)
    assert [(r["id"], r.get("amount")) for r in rows] == [("1", "1.5"), ("6", "2.25")]
    assert sum(b.records for b in batches) == 6  # the blank line is not a record


async def test_ndjson_unknown_fields_may_be_ignored() -> None:
    data = b'{"id": 1, "extra": 2}\n{"id": 2}\n'
    batches = await parse_all(pipeline(format="ndjson", ignore_unknown_fields=True), data)
    assert [r["id"] for r in rows_of(batches)] == [1, 2]
    assert not any(b.bad for b in batches)


async def test_ndjson_clean_blocks_take_the_fast_path_with_json_types() -> None:
    data = b"".join(json.dumps({"id": i, "amount": i / 2}).encode() + b"\n" for i in range(100))
    [batch] = await parse_all(pipeline(format="ndjson"), data)
    assert batch.batch.schema.field("id").type == pa.int64()
    assert batch.rows.of(99) == 100


async def test_a_10_mb_json_line_is_one_record() -> None:
    big = json.dumps({"id": 1, "name": "x" * (10 * 1024 * 1024)}).encode()
    batches = await parse_all(pipeline(format="ndjson"), big + b'\n{"id": 2}\n', chunk=1 << 20)
    assert [len(str(r["name"] or "")) for r in rows_of(batches)] == [10 * 1024 * 1024, 0]


async def test_parquet_is_read_in_batches_with_only_known_columns() -> None:
    table = pa.table({"id": list(range(150_000)), "name": ["n"] * 150_000})
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=50_000)
    batches = await parse_all(pipeline(format="parquet"), sink.getvalue(), chunk=1 << 20)
    assert sum(b.batch.num_rows for b in batches) == 150_000
    assert batches[1].rows.first == 1 + batches[0].batch.num_rows


async def test_parquet_extra_columns_fail_unless_ignored() -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": [1], "surprise": [2]}), sink)
    with pytest.raises(PermanentError, match="'surprise' is not in the table schema"):
        await parse_all(pipeline(format="parquet"), sink.getvalue())
    p = replace(pipeline(format="parquet"), ignore_unknown_fields=True)
    [batch] = await parse_all(p, sink.getvalue())
    assert batch.batch.schema.names == ["id"]


async def test_not_parquet_fails_the_file() -> None:
    with pytest.raises(PermanentError, match="not a readable Parquet file"):
        await parse_all(pipeline(format="parquet"), b"PAR1 but not really")
