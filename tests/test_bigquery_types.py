"""The one type table: aliases read as canonical names, and every engine's table covers it."""

from __future__ import annotations

from google.cloud.bigquery import SchemaField

from service.adapters.gcp.bigquery_specs import spelled as _spelled
from service.adapters.gcp.bigquery_specs import spelled_column as _spelled_column
from service.adapters.local.duckdb_warehouse import DUCKDB_TYPES
from service.bigquery_types import ALIASES, TIME_TYPES, TYPES, canonical
from service.models import Column
from service.pipeline.casts import ARROW_TYPES
from service.pipeline.csv_format import CSV_FAST_TYPES
from service.pipeline.value_parsers import PY_PARSERS


def test_aliases_and_case_read_as_the_canonical_name() -> None:
    assert [canonical(n) for n in ("int64", "Float64", "BOOL", "string")] == [
        "INTEGER",
        "FLOAT",
        "BOOLEAN",
        "STRING",
    ]
    assert canonical("struct") == "RECORD"
    assert canonical("geometry") == "GEOMETRY"  # unknown: left for the reader to refuse


def test_aliases_name_supported_types_and_are_not_types_themselves() -> None:
    assert set(ALIASES.values()) <= TYPES
    assert not set(ALIASES) & TYPES
    assert TIME_TYPES <= TYPES


def test_every_engine_table_is_keyed_by_exactly_the_canonical_types() -> None:
    scalar = TYPES - {"RECORD"}  # a struct of its fields' types in every engine
    assert set(ARROW_TYPES) == scalar
    assert set(PY_PARSERS) == scalar
    assert set(DUCKDB_TYPES) == scalar
    assert set(CSV_FAST_TYPES) <= TYPES


def test_a_table_typed_with_aliases_matches_the_canonical_schema() -> None:
    nested = Column("r", "RECORD", fields=(Column("id", "INTEGER", "REQUIRED"),))
    field = SchemaField("r", "STRUCT", fields=[SchemaField("id", "INT64", mode="REQUIRED")])
    assert _spelled(field) == _spelled_column(nested) == "RECORD<id INTEGER REQUIRED>"
    assert _spelled(SchemaField("ok", "bool")) == _spelled_column(Column("ok", "BOOLEAN"))
