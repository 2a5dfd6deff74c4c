"""validate/transform: renames, drops, computed columns, lineage, partition checks."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from service.errors import PermanentError
from service.models import Column, EventMeta, ObjectInfo, ObjectRef, TableSpec, UnitKey
from service.pipeline.context import RowNumbers, UnitContext
from service.pipeline.definition import Pipeline, Transform
from service.pipeline.transform import LINEAGE_ROWS, Transformer
from tests.pipeline_support import pipeline

STARTED = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)


def context(p: Pipeline, name: str = "orders/2026-11-20.csv") -> UnitContext:
    info = ObjectInfo(ObjectRef("landing", name, 7), 100)
    return UnitContext(
        UnitKey(p.name, "landing", name, 7), p, info, EventMeta("ev-1", "t", "s"), STARTED
    )


def batch(**columns: list[object]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            k: pa.array([None if v is None else str(v).encode() for v in vs], pa.binary())
            for k, vs in columns.items()
        }
    )


def test_rows_are_cast_and_bad_ones_reported_with_their_file_row() -> None:
    t = Transformer(context(pipeline()))
    out = t(
        batch(
            id=[1, "x", 3], name=["a", "b", "c"], amount=["1.5", "2", "z"], day=["2026-11-20"] * 3
        ),
        RowNumbers(10, skipped=(11,)),
    )
    assert out.batch.to_pylist() == [
        {
            "id": 1,
            "name": "a",
            "amount": Decimal("1.500000000"),
            "day": date(2026, 11, 20),
        }
    ]
    assert [(b.row, b.reason.split(":")[0]) for b in out.bad] == [(12, "id"), (13, "amount")]
    assert '"id": "x"' in out.bad[0].raw
    assert out.rows_in == 3


def test_rename_drop_constant_and_a_date_from_the_path() -> None:
    p = pipeline(
        transforms=(
            Transform("rename", "ident", to="id"),
            Transform("drop", "junk"),
            Transform("constant", "name", value="fixed"),
            Transform("from_path", "day", pattern=r"(\d{8})\.csv$", format="%Y%m%d"),
        )
    )
    t = Transformer(context(p, "orders/20261120.csv"))
    out = t(batch(ident=[1, 2], junk=["?", "?"], amount=[None, "3"]), RowNumbers(1))
    assert out.bad == []
    assert out.batch.to_pylist() == [
        {"id": 1, "name": "fixed", "amount": None, "day": date(2026, 11, 20)},
        {
            "id": 2,
            "name": "fixed",
            "amount": Decimal("3.000000000"),
            "day": date(2026, 11, 20),
        },
    ]


def test_a_path_that_does_not_match_fails_the_file() -> None:
    p = pipeline(transforms=(Transform("from_path", "day", pattern=r"(\d{4}-\d{2}-\d{2})"),))
    with pytest.raises(PermanentError, match="does not match"):
        Transformer(context(p, "orders/undated.csv"))


def test_a_cast_transform_parses_with_its_format() -> None:
    p = pipeline(transforms=(Transform("cast", "day", format="%d.%m.%Y"),))
    out = Transformer(context(p))(batch(id=[1, 2], day=["20.11.2026", "2026-11-20"]), RowNumbers(1))
    assert [r["day"] for r in out.batch.to_pylist()] == [date(2026, 11, 20)]
    assert [b.row for b in out.bad] == [2]


def test_unknown_file_columns_fail_unless_ignored_and_missing_required_ones_fail() -> None:
    with pytest.raises(PermanentError, match="'extra' is not in the table schema"):
        Transformer(context(pipeline()))(batch(id=[1], extra=[2]), RowNumbers(1))
    out = Transformer(context(pipeline(ignore_unknown_fields=True)))(
        batch(id=[1], extra=[2]), RowNumbers(1)
    )
    assert out.batch.num_rows == 1
    with pytest.raises(PermanentError, match="lacks required columns: id"):
        Transformer(context(pipeline()))(batch(name=["a"]), RowNumbers(1))


def test_ndjson_records_missing_a_required_field_are_bad_rows_not_a_bad_file() -> None:
    out = Transformer(context(pipeline(format="ndjson")))(batch(name=["a"]), RowNumbers(1))
    assert [b.reason for b in out.bad] == ["id: required value is missing"]


def test_lineage_columns_name_the_source_event_and_start() -> None:
    out = Transformer(context(pipeline(lineage=True)))(batch(id=[1, 2]), RowNumbers(1))
    row = out.batch.to_pylist()[1]
    assert row["_source_uri"] == "gs://landing/orders/2026-11-20.csv"
    assert row["_source_generation"] == 7
    assert row["_event_id"] == "ev-1"
    assert row["_ingested_at"] == STARTED


@pytest.mark.parametrize("load", ["job", "stream"])
def test_lineage_fills_every_row_of_batches_of_any_length(load: str) -> None:
    t = Transformer(context(pipeline(lineage=True, load=load)))
    for rows in (3, LINEAGE_ROWS + 5, 2):  # the third slices what the second built
        out = t(batch(id=list(range(rows))), RowNumbers(1))
        uris = out.batch.column("_source_uri")
        assert out.batch.num_rows == rows
        assert uris.null_count == 0
        assert set(uris.to_pylist()) == {"gs://landing/orders/2026-11-20.csv"}
        assert out.batch.column("_ingested_at").to_pylist()[-1] == STARTED


def test_lineage_text_is_plain_for_the_write_api_and_a_dictionary_for_parquet() -> None:
    # The Write API takes plain Arrow types only; Parquet stores a dictionary once per row group.
    streamed = Transformer(context(pipeline(lineage=True, load="stream")))
    spooled = Transformer(context(pipeline(lineage=True)))
    assert streamed.schema.field("_event_id").type == pa.string()
    assert pa.types.is_dictionary(spooled.schema.field("_event_id").type)


def replace_partition(**changes: object) -> Pipeline:
    table = TableSpec("sales.orders", (Column("id", "INTEGER"), Column("day", "DATE")), "day")
    return pipeline(table=table, write_mode="replace_partition", **changes)


def test_replacing_the_partition_named_by_the_path_refuses_rows_of_other_days() -> None:
    t = Transformer(context(replace_partition()))
    out = t(batch(id=[1, 2, 3], day=["2026-11-20", "2026-11-19", None]), RowNumbers(1))
    assert [r["id"] for r in out.batch.to_pylist()] == [1]
    assert [b.row for b in out.bad] == [2, 3]
    assert "not in partition 2026-11-20" in out.bad[0].reason
    assert out.days == {date(2026, 11, 20)}


def test_replacing_by_column_reports_the_days_seen() -> None:
    t = Transformer(context(replace_partition(partition_date="column"), "orders/any.csv"))
    out = t(batch(id=[1, 2], day=["2026-11-20", "2026-11-21"]), RowNumbers(1))
    assert out.days == {date(2026, 11, 20), date(2026, 11, 21)}
    assert out.bad == []


def test_replacing_by_path_needs_a_date_in_the_path() -> None:
    with pytest.raises(PermanentError, match="no date"):
        Transformer(context(replace_partition(), "orders/latest.csv"))
