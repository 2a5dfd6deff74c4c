"""RECORD and REPEATED columns: structs and lists rebuilt to the schema, bad values by path."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from service.models import Column
from service.pipeline.casts import arrow_type
from service.pipeline.nested import convert_nested
from tests.pipeline_support import EVENTS

# The events feed's items (sku REQUIRED, price NUMERIC, tags REPEATED), with a JSON field.
_EVENT_ITEMS = next(c for c in EVENTS.columns if c.name == "items")
ITEMS = replace(_EVENT_ITEMS, fields=(*_EVENT_ITEMS.fields, Column("meta", "JSON")))
USER = Column(
    "user",
    "RECORD",
    fields=(Column("id", "INTEGER", "REQUIRED"), Column("seen", "TIMESTAMP")),
)


def cast(values: Sequence[Any], column: Column, **kw: bool) -> tuple[list[Any], dict[int, str]]:
    raw = pa.array(values)
    out, failed = convert_nested(
        raw, column, text=kw.get("text", True), ignore_unknown=kw.get("ignore", False)
    )
    assert out.type == arrow_type(column)
    return out.to_pylist(), failed


def test_records_and_arrays_of_records_are_cast_field_by_field() -> None:
    values, failed = cast([{"id": 1, "seen": "2026-11-20T08:00:00Z"}, None, {"id": 2}], USER)
    assert failed == {}
    assert values == [
        {"id": 1, "seen": datetime(2026, 11, 20, 8, tzinfo=UTC)},
        None,
        {"id": 2, "seen": None},
    ]
    values, failed = cast([[{"sku": "a", "price": 1.5, "tags": ["x", "y"]}], None, []], ITEMS)
    assert failed == {}
    assert values == [
        [{"sku": "a", "price": Decimal("1.5"), "tags": ["x", "y"], "meta": None}],
        [],  # a REPEATED column is never NULL
        [],
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([{"sku": "a"}, {"sku": "b", "price": "x"}], 'items[1].price: "x" is not a valid NUMERIC'),
        ([{"sku": "a"}, {"price": 1}], "items[1].sku: required value is missing"),
        ([{"sku": "a", "tags": ["x", None]}], "items[0].tags[1]: is NULL"),
        ([{"sku": "a", "colour": "red"}], "items[0].colour: unknown field"),
        ([{"sku": "a", "tags": "x"}], 'items[0].tags: "x" is not an array'),
        ({"sku": "a"}, 'items: {"sku": "a"} is not an array'),
        (["a"], 'items[0]: "a" is not a RECORD'),
    ],
)
def test_a_bad_value_is_reported_with_the_path_of_the_field(value: object, reason: str) -> None:
    good = [{"sku": "ok", "price": 2}]
    values, failed = cast([json.dumps(good), json.dumps(value)], ITEMS)
    assert values[0] == [{"sku": "ok", "price": Decimal(2), "tags": [], "meta": None}]
    assert values[1] == []
    assert list(failed) == [1]
    assert failed[1].startswith(reason), failed[1]


def test_the_fast_path_falls_back_to_name_the_bad_row() -> None:
    rows = [[{"sku": "a", "price": "1"}]] * 3 + [[{"sku": "b", "price": "x"}]]
    values, failed = cast(rows, ITEMS)  # an Arrow list<struct>, not text
    assert failed == {3: 'items[0].price: "x" is not a valid NUMERIC'}
    assert values[:3] == [[{"sku": "a", "price": Decimal(1), "tags": [], "meta": None}]] * 3


def test_unknown_nested_fields_are_bad_unless_ignored() -> None:
    rows = [{"id": 1, "extra": {"deep": True}}]
    assert cast(rows, USER)[1] == {0: "user.extra: unknown field"}
    assert cast(rows, USER, ignore=True) == ([{"id": 1, "seen": None}], {})


def test_json_leaves_keep_their_json() -> None:
    rows = [[{"sku": "a", "meta": {"k": [1, {"z": None}]}}, {"sku": "b", "meta": "text"}]]
    values, failed = cast([json.dumps(r) for r in rows], ITEMS)
    assert failed == {}
    assert [item["meta"] for item in values[0]] == ['{"k": [1, {"z": null}]}', '"text"']


def test_text_is_read_as_json_and_blank_text_is_null() -> None:
    values, failed = cast(['{"id": 3}', "", None, "{broken"], USER)
    assert values[:3] == [{"id": 3, "seen": None}, None, None]
    assert failed[3].startswith("user: not valid JSON")


def test_a_struct_slice_keeps_its_rows() -> None:
    raw = pa.array([{"id": 1}, {"id": 2}, {"id": 3}]).slice(1)
    out, failed = convert_nested(raw, USER, text=True, ignore_unknown=False)
    assert [r["id"] for r in out.to_pylist()] == [2, 3] and failed == {}
