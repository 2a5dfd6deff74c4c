"""service/peek.py: ``--where`` text into a filter, and filters checked against a table."""

from __future__ import annotations

import pytest

from service.errors import PermanentError
from service.models import RowFilter
from service.peek import checked_filters, parse_filter


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("amount>100", RowFilter("amount", ">", "100")),
        ("amount >= 1.5", RowFilter("amount", ">=", "1.5")),
        ("country = FR", RowFilter("country", "=", "FR")),
        ("country!=FR", RowFilter("country", "!=", "FR")),
        ("note=a=b", RowFilter("note", "=", "a=b")),  # the first operator splits
        ("name=", RowFilter("name", "=", "")),
        ("name=x' OR 1=1 --", RowFilter("name", "=", "x' OR 1=1 --")),  # only ever a value
    ],
)
def test_a_filter_is_column_operator_value(text: str, expected: RowFilter) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize("text", ["amount", "=5", "amount~5", "a!5"])
def test_text_that_is_no_filter_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not COLUMN OP VALUE"):
        parse_filter(text)


def test_a_filter_must_name_a_column_of_the_table() -> None:
    good = [RowFilter("amount", ">", "1")]
    assert checked_filters("t.x", good, {"amount", "id"}) == good
    with pytest.raises(PermanentError, match=r"no column '1=1 OR amount' \(it has amount, id\)"):
        checked_filters("t.x", [RowFilter("1=1 OR amount", "=", "1")], {"amount", "id"})
    with pytest.raises(PermanentError, match="is not one of"):
        checked_filters("t.x", [RowFilter("amount", "; DROP", "1")], {"amount"})
