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
        "BOOLEAN",
        "TIMESTAMP",
        "DATE",
        "DATETIME",
        "BYTES",
    }
)
# GoogleSQL spellings BigQuery accepts for the same types.
ALIASES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN"}
# Types that hold a point in time: partition columns, and what a `cast` with a format produces.
TIME_TYPES = frozenset({"DATE", "DATETIME", "TIMESTAMP"})


def canonical(name: str) -> str:
    """The canonical name of a type however it is spelled (case, alias); unknown ones as given."""
    upper = name.upper()
    return ALIASES.get(upper, upper)
