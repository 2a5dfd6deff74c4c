"""Schema evolution: added NULLABLE columns and relaxed REQUIRED ones pass; all else is refused."""

from __future__ import annotations

import pytest

from service.errors import PermanentError
from service.models import Column, TableSpec
from service.schema_changes import SchemaChange, plan_change

HAVE = {"id": ("INTEGER", "REQUIRED"), "name": ("STRING", "NULLABLE")}


def plan(*columns: Column) -> SchemaChange:
    return plan_change(TableSpec("d.t", columns), HAVE, lambda c: c.type)


def test_the_same_schema_changes_nothing() -> None:
    assert not plan(Column("id", "INTEGER", "REQUIRED"), Column("name", "STRING"))


def test_added_nullable_columns_and_relaxed_required_ones_are_applied() -> None:
    change = plan(
        Column("id", "INTEGER"),
        Column("name", "STRING"),
        Column("channel", "STRING"),
        Column("tags", "STRING", "REPEATED"),
    )
    assert change == SchemaChange(
        (Column("channel", "STRING"), Column("tags", "STRING", "REPEATED")), ("id",)
    )
    assert change.describe() == (
        "added column channel (STRING NULLABLE), added column tags (STRING REPEATED),"
        " relaxed column id to NULLABLE"
    )


@pytest.mark.parametrize(
    ("columns", "says"),
    [
        ((Column("id", "STRING", "REQUIRED"), Column("name", "STRING")), "column 'id' is INTEGER"),
        ((Column("id", "INTEGER", "REQUIRED"),), "column 'name' is in the table but not"),
        (
            (Column("id", "INTEGER", "REQUIRED"), Column("name", "STRING", "REQUIRED")),
            "column 'name' is NULLABLE in the table, REQUIRED in the schema",
        ),
        (
            (
                *[Column("id", "INTEGER", "REQUIRED"), Column("name", "STRING")],
                Column("x", "DATE", "REQUIRED"),
            ),
            "column 'x' is new and REQUIRED: add it as NULLABLE",
        ),
        (
            (Column("id", "INTEGER", "REPEATED"), Column("name", "STRING")),
            "column 'id' is INTEGER REQUIRED in the table, INTEGER REPEATED in the schema",
        ),
    ],
)
def test_any_other_difference_is_refused_in_one_line_naming_the_column(
    columns: tuple[Column, ...], says: str
) -> None:
    with pytest.raises(PermanentError) as caught:
        plan(*columns)
    text = str(caught.value)
    assert text.startswith("table d.t exists with another schema: ") and says in text
    assert "\n" not in text
