"""The one type table: aliases read as canonical names, and every engine's table covers it."""

from __future__ import annotations

from google.cloud.bigquery import SchemaField

from service.adapters.gcp.bigquery import schema_difference as bigquery_difference
from service.adapters.local.duckdb_warehouse import DUCKDB_TYPES
from service.bigquery_types import ALIASES, TIME_TYPES, TYPES, canonical
from service.models import Column, TableSpec
from service.pipeline.casts import ARROW_TYPES, PY_PARSERS
from service.pipeline.csv_format import CSV_FAST_TYPES


def test_aliases_and_case_read_as_the_canonical_name() -> None:
    assert [canonical(n) for n in ("int64", "Float64", "BOOL", "string")] == [
        "INTEGER",
        "FLOAT",
        "BOOLEAN",
        "STRING",
    ]
    assert canonical("geography") == "GEOGRAPHY"  # unknown: left for the reader to refuse


def test_aliases_name_supported_types_and_are_not_types_themselves() -> None:
    assert set(ALIASES.values()) <= TYPES
    assert not set(ALIASES) & TYPES
    assert TIME_TYPES <= TYPES


def test_every_engine_table_is_keyed_by_exactly_the_canonical_types() -> None:
    assert set(ARROW_TYPES) == TYPES
    assert set(PY_PARSERS) == TYPES
    assert set(DUCKDB_TYPES) == TYPES
    assert set(CSV_FAST_TYPES) <= TYPES


def test_a_table_typed_with_aliases_matches_the_canonical_schema() -> None:
    table = TableSpec("d.t", (Column("id", "INTEGER", "REQUIRED"), Column("ok", "BOOLEAN")))
    fields = [SchemaField("id", "INT64", mode="REQUIRED"), SchemaField("ok", "bool")]
    assert bigquery_difference(table, fields) is None
    fields[1] = SchemaField("ok", "STRING")
    assert (
        bigquery_difference(table, fields)
        == "column 'ok' is STRING NULLABLE in the table, BOOLEAN NULLABLE here"
    )
