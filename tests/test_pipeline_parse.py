"""parse: newline-delimited JSON and Parquet into Arrow batches."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.errors import PermanentError
from service.models import Column, TableSpec
from tests.pipeline_support import parse_all, pipeline, rows_of


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
        (5, "not a JSON object"),
    ]
    rows = rows_of(batches)
    assert [(r["id"], r.get("amount")) for r in rows] == [("1", "1.5"), ("4", None), ("6", "2.25")]
    assert rows[1]["name"] == '{"nested": 1}'  # an object in a STRING column: its JSON text
    assert sum(b.records for b in batches) == 6  # the blank line is not a record


async def test_ndjson_unknown_fields_may_be_ignored() -> None:
    data = b'{"id": 1, "extra": 2}\n{"id": 2}\n'
    batches = await parse_all(pipeline(format="ndjson", ignore_unknown_fields=True), data)
    assert [r["id"] for r in rows_of(batches)] == [1, 2]
    assert not any(b.bad for b in batches)


@pytest.mark.parametrize("nested", [b"[]", b"[1, 2]", b'{"b": 2, "a": 1}'])
async def test_ndjson_nested_values_in_a_string_column_keep_their_json_text(nested: bytes) -> None:
    # pyarrow reads the block whole (a list or struct column): the line-by-line path keeps the
    # text as written (pyarrow would add the keys other lines have, and sort nothing back).
    data = b'{"id": 1, "name": ' + nested + b'}\n{"id": 2, "name": "b"}\n'
    batches = await parse_all(pipeline(format="ndjson"), data)
    assert not any(batch.bad for batch in batches)
    rows = rows_of(batches)
    assert [(r["id"], r["name"]) for r in rows] == [
        ("1", json.dumps(json.loads(nested))),
        ("2", "b"),
    ]


async def test_ndjson_nested_columns_pass_through_as_arrow_structs_and_lists() -> None:
    schema = (
        Column("id", "INTEGER"),
        Column(
            "user", "RECORD", fields=(Column("id", "INTEGER"), Column("tags", "STRING", "REPEATED"))
        ),
        Column("payload", "JSON"),
    )
    p = pipeline(format="ndjson", table=TableSpec("d.t", schema))
    data = b'{"id": 1, "user": {"id": 7, "tags": ["a"]}, "payload": "x"}\n{"id": 2}\n'
    [batch] = await parse_all(p, data)
    assert pa.types.is_struct(batch.batch.schema.field("user").type)  # the fast path
    assert batch.batch.column("payload").to_pylist() == ['"x"', None]  # JSON text
    data = b'{"id": 1, "payload": {"k": 1}}\n{"id": 2, "user": "no", "payload": [true]}\n'
    [batch] = await parse_all(p, data)  # line by line: nested columns and JSON as JSON text
    assert batch.batch.column("payload").to_pylist() == ['{"k": 1}', "[true]"]
    assert batch.batch.column("user").to_pylist() == [None, '"no"']


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
