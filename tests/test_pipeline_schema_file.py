"""Schemas: every BigQuery type, RECORDs to any depth, REPEATED; errors name the field's path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.bigquery_types import TYPES
from service.models import Column
from service.pipeline.schema_file import SchemaError, read_schema

EVENTS = [
    {"name": "id", "type": "INT64", "mode": "REQUIRED"},
    {"name": "at", "type": "TIMESTAMP"},
    {"name": "payload", "type": "JSON"},
    {
        "name": "items",
        "type": "STRUCT",
        "mode": "REPEATED",
        "fields": [
            {"name": "sku", "type": "STRING", "mode": "REQUIRED"},
            {"name": "price", "type": "BIGNUMERIC"},
            {"name": "tags", "type": "STRING", "mode": "repeated"},
            {"name": "where", "type": "RECORD", "fields": [{"name": "at", "type": "GEOGRAPHY"}]},
        ],
    },
]


def test_a_bigquery_json_schema_file_reads_nested_records(tmp_path: Path) -> None:
    (tmp_path / "events.json").write_text(json.dumps(EVENTS), encoding="utf-8")
    columns = read_schema("events.json", tmp_path)
    items = columns[3]
    assert (items.type, items.mode, items.repeated, items.nested) == ("RECORD", "REPEATED", 1, 1)
    assert [f.name for f in items.fields] == ["sku", "price", "tags", "where"]
    assert items.fields[2] == Column("tags", "STRING", "REPEATED")
    assert items.fields[3].fields == (Column("at", "GEOGRAPHY"),)
    assert items.item.mode == "NULLABLE" and items.item.fields == items.fields
    assert columns[0] == Column("id", "INTEGER", "REQUIRED")


def test_every_type_is_accepted_inline() -> None:
    fields = [
        {"name": t.lower(), "type": t}
        | ({"fields": [{"name": "x", "type": "STRING"}]} if t == "RECORD" else {})
        for t in sorted(TYPES)
    ]
    assert {c.type for c in read_schema(fields, Path("."))} == TYPES


@pytest.mark.parametrize(
    ("fields", "where", "says"),
    [
        ([{"name": "r", "type": "RECORD"}], "schema[0].fields", "needs a list of fields"),
        (
            [{"name": "s", "type": "STRING", "fields": [{"name": "x", "type": "STRING"}]}],
            "schema[0].fields",
            "only a RECORD",
        ),
        (
            [{"name": "r", "type": "RECORD", "fields": [{"name": "x", "type": "RANGE"}]}],
            "schema[0].fields[0].type",
            "GEOGRAPHY",  # the supported types are listed
        ),
        (
            [{"name": "r", "type": "RECORD", "fields": [{"name": "x", "type": "INT64"}] * 2}],
            "schema[0].fields",
            "unique",
        ),
    ],
)
def test_errors_name_the_path_of_the_field(fields: object, where: str, says: str) -> None:
    with pytest.raises(SchemaError) as caught:
        read_schema(fields, Path("."))
    assert caught.value.where == where
    assert says in caught.value.message


def test_records_nest_at_most_fifteen_deep() -> None:
    field: dict[str, object] = {"name": "leaf", "type": "STRING"}
    for depth in range(15):
        field = {"name": f"r{depth}", "type": "RECORD", "fields": [field]}
    with pytest.raises(SchemaError, match="15 levels"):
        read_schema([field], Path("."))
    read_schema([field["fields"][0]], Path("."))  # type: ignore[index]
