"""Pipelines matching the same objects are found by an object name both would take."""

from __future__ import annotations

from dataclasses import replace

import pytest

from service.models import Column, TableSpec
from service.pipeline.definition import Pipeline
from service.pipeline.overlaps import overlaps

BASE = Pipeline("a", "landing", TableSpec("ds.t", (Column("x", "STRING"),)))


def pair(first: dict[str, object], second: dict[str, object]) -> list[str]:
    one = replace(BASE, **first)  # type: ignore[arg-type]
    two = replace(BASE, name="b", **second)  # type: ignore[arg-type]
    return [o.example for o in overlaps([one, two])]


@pytest.mark.parametrize(
    ("first", "second", "example"),
    [
        ({"prefix": "orders/"}, {"prefix": "orders/"}, "orders/x"),
        ({"prefix": "", "glob": "*.csv"}, {"prefix": "orders/"}, "orders/x.csv"),
        ({"prefix": "in/{date}/"}, {"prefix": "in/", "glob": "*.csv*"}, "in/2026-01-01/x.csv"),
        ({"glob": "[ab]?.csv"}, {"glob": "a*"}, "ax.csv"),
    ],
)
def test_overlaps_name_an_object_both_match(
    first: dict[str, object], second: dict[str, object], example: str
) -> None:
    assert pair(first, second) == [example]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"prefix": "orders/"}, {"prefix": "customers/"}),
        ({"glob": "*.csv"}, {"glob": "*.json"}),
        ({"prefix": "in/{date}/"}, {"prefix": "in/latest/"}),
        ({}, {"bucket": "other"}),
        # The default quarantine is in the source bucket; no pipeline takes its own.
        ({"prefix": "_quarantine/"}, {"prefix": "_quarantine/a/"}),
    ],
)
def test_disjoint_pipelines_do_not_overlap(
    first: dict[str, object], second: dict[str, object]
) -> None:
    assert pair(first, second) == []


def test_the_same_table_is_told_from_a_fan_out() -> None:
    [same] = overlaps([BASE, replace(BASE, name="b")])
    assert same.same_table and "loaded twice" in same.describe()
    other = replace(BASE, name="b", table=TableSpec("ds.u", BASE.table.columns))
    [fan_out] = overlaps([BASE, other])
    assert not fan_out.same_table and "its own table" in fan_out.describe()
