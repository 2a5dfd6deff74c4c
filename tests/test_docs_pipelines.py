"""docs/pipelines.md documents exactly the keys the pipelines file reader accepts."""

from __future__ import annotations

import re

from service.bigquery_types import TYPES
from service.pipeline.definition import LINEAGE_COLUMNS
from service.pipeline.pipelines_file import (
    ACCEPTED_KEYS,
    TRANSFORM_KEYS,
    TRANSFORM_OPTIONAL_KEYS,
)
from tests.conftest import ROOT

# A table's first cell: the key, op, type or column it documents.
FIRST_CELL = re.compile(r"^\| `([^`]+)` \|")
# The reference's headings that document a table of the file, and which one.
SECTIONS = {
    "The file": "",
    "`[[pipelines]]`": "pipelines",
    "`[pipelines.csv]`": "pipelines.csv",
    "`[pipelines.bad_rows]`": "pipelines.bad_rows",
}


def sections() -> dict[str, list[str]]:
    """The lines under each `## ` heading of the reference."""
    text = (ROOT / "docs" / "pipelines.md").read_text(encoding="utf-8")
    found: dict[str, list[str]] = {}
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("## "):
            lines = found.setdefault(line[3:].strip(), [])
        else:
            lines.append(line)
    return found


def documented(lines: list[str]) -> dict[str, str]:
    """First cell -> the whole row, for every table row documenting a name."""
    return {m.group(1): line for line in lines if (m := FIRST_CELL.match(line))}


def test_every_accepted_key_is_documented_and_no_other() -> None:
    doc = sections()
    for heading, section in SECTIONS.items():
        assert set(documented(doc[heading])) == ACCEPTED_KEYS[section], heading


def test_every_transform_is_documented_with_its_keys() -> None:
    rows = documented(sections()["`[[pipelines.transforms]]`"])
    assert set(rows) == set(TRANSFORM_KEYS)
    for op, row in rows.items():
        keys_cell = row.split("|")[2]
        keys = set(re.findall(r"`([^`]+)`", keys_cell))
        assert keys == {*TRANSFORM_KEYS[op], *TRANSFORM_OPTIONAL_KEYS.get(op, ())}, op
    assert "`op`" in "\n".join(sections()["`[[pipelines.transforms]]`"])


def test_the_supported_types_are_the_type_table() -> None:
    assert set(documented(sections()["Schema"])) == TYPES


def test_the_lineage_columns_are_documented() -> None:
    rows = documented(sections()["Lineage columns"])
    assert {name: row.split("|")[2].strip() for name, row in rows.items()} == {
        c.name: f"`{c.type}`" for c in LINEAGE_COLUMNS
    }
    assert "`lineage = false`" in "\n".join(sections()["Lineage columns"])


def test_the_readme_links_the_reference() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/pipelines.md)" in readme
