"""The BigQuery column types this service validates and loads, and their other spellings.

A schema may name a type either way; the pipelines file is read into the canonical names
(``canonical``), so every other table (Arrow, DuckDB, the CSV fast path) lists only those.
The canonical names are the ones the BigQuery API returns for a table's schema.
"""

from __future__ import annotations

# Every supported column type, by its canonical name.
TYPES = frozenset(
    {
        "STRING",
        "INTEGER",
        "FLOAT",
        "NUMERIC",
        "BIGNUMERIC",
        "BOOLEAN",
        "TIMESTAMP",
        "DATE",
        "TIME",
        "DATETIME",
        "BYTES",
        "JSON",
        "GEOGRAPHY",
        "RECORD",
    }
)
# GoogleSQL spellings BigQuery accepts for the same types.
ALIASES = {
    "INT64": "INTEGER",
    "FLOAT64": "FLOAT",
    "BOOL": "BOOLEAN",
    "DECIMAL": "NUMERIC",
    "BIGDECIMAL": "BIGNUMERIC",
    "STRUCT": "RECORD",
}
# The GoogleSQL names of the canonical (legacy SQL) names that differ, as CAST takes them.
GOOGLESQL = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}
# Column modes; a REPEATED column is an array of its type.
MODES = ("NULLABLE", "REQUIRED", "REPEATED")
# Types that hold a point in time: partition columns, and what a `cast` with a format produces.
TIME_TYPES = frozenset({"DATE", "DATETIME", "TIMESTAMP"})
# Types whose text a `cast` with a decimal separator reads.
NUMBER_TYPES = frozenset({"FLOAT", "NUMERIC", "BIGNUMERIC"})
# Types whose values are kept as text: a nested value arriving there is kept as its JSON text.
TEXT_TYPES = frozenset({"STRING", "JSON", "GEOGRAPHY"})


def canonical(name: str) -> str:
    """The canonical name of a type however it is spelled (case, alias); unknown ones as given."""
    upper = name.upper()
    return ALIASES.get(upper, upper)


def googlesql(name: str) -> str:
    """A scalar type's GoogleSQL name, for a CAST; a type that has none is cast as STRING."""
    kind = canonical(name)
    if kind not in TYPES or kind in ("RECORD", "JSON", "GEOGRAPHY"):
        return "STRING"
    return GOOGLESQL.get(kind, kind)
