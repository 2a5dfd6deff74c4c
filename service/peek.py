"""``ingest peek``'s filters: ``COLUMN OP VALUE`` parsed and checked, never turned into SQL text.

A filter names a column, one comparison of a fixed set and a value. The warehouses check the
column against the table's own schema (so only a real column name, quoted, reaches the SQL),
take the operator from the fixed set, and send the value as a query parameter cast to the
column's type. So ``--where`` can only narrow a read of one table that the caller may read
anyway: no expression, function, subquery or second statement can get in.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from service.errors import PermanentError
from service.models import FILTER_OPERATORS, RowFilter

# Rows one peek may show: enough to look, never a table export.
MAX_PEEK_ROWS = 1000


def parse_filter(text: str) -> RowFilter:
    """``amount>=10`` or ``country = FR``; the first operator found splits the text."""
    for index, char in enumerate(text):
        if char in "=!<>":
            two = text[index : index + 2]
            operator = two if two in FILTER_OPERATORS else char
            if operator not in FILTER_OPERATORS:
                break
            column = text[:index].strip()
            value = text[index + len(operator) :].strip()
            if column:
                return RowFilter(column, operator, value)
            break
    allowed = " ".join(FILTER_OPERATORS)
    raise ValueError(f"{text!r} is not COLUMN OP VALUE (OP one of {allowed})")


def checked_filters(
    table: str, where: Sequence[RowFilter], columns: Collection[str]
) -> Sequence[RowFilter]:
    """The filters, once each names a column of the table and a known operator."""
    for f in where:
        if f.operator not in FILTER_OPERATORS:
            raise PermanentError(f"{f.operator!r} is not one of {' '.join(FILTER_OPERATORS)}")
        if f.column not in columns:
            known = ", ".join(sorted(columns))
            raise PermanentError(f"table {table} has no column {f.column!r} (it has {known})")
    return where
