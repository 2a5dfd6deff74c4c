"""Rich output shared by the commands: cells that never parse markup, coloured states."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

# Colour of each outcome or ledger state; anything else is shown plain.
STYLES = {
    "loaded": "green",
    "published": "green",
    "duplicate": "cyan",
    "ignored": "dim",
    "would-run": "green",
    "would-sweep": "green",
    "would-ignore": "dim",
    "COMPLETED": "green",
    "IN_PROGRESS": "yellow",
    "busy": "yellow",
    "transient": "yellow",
    "FAILED": "red",
    "failed": "red",
}


def cell(value: Any, style: str | None = None) -> Text:
    """Text taken literally: object names and reasons come from outside and may hold '['."""
    if value is None:
        return Text("")
    return Text(str(value), style=style or STYLES.get(str(value), ""))


def outcome(value: str) -> Text:
    return cell(value, STYLES.get(value, "bold red"))


def table(title: str, columns: Iterable[str | tuple[str, str]]) -> Table:
    """A table; a column given as (name, flags) may be "right"-aligned and/or "nowrap"."""
    t = Table(title=Text(title), title_justify="left", header_style="bold")
    for column in columns:
        name, flags = column if isinstance(column, tuple) else (column, "")
        right = "right" in flags
        t.add_column(
            name,
            justify="right" if right else "left",
            no_wrap=right or "nowrap" in flags,
            overflow="fold",
        )
    return t


def source_label(source: str) -> str:
    """A replay source as the operator typed it: relative to the working folder when inside."""
    path = Path(source)
    if path.is_absolute():
        with contextlib.suppress(ValueError):
            return str(path.relative_to(Path.cwd()))
    return source


# The row counts of an outcome's summary, in the words a summary line uses for each.
ROW_COUNTS = (
    ("rows_loaded", "rows loaded"),
    ("rows_quarantined", "quarantined"),
    ("rows_rejected", "rejected with their file"),
    ("rows_already_loaded", "already loaded by an earlier run"),
)


def rows_line(bodies: Iterable[dict[str, Any]]) -> str:
    """The rows of every summary added up: loaded and quarantined always, the rest when any
    (a duplicate's rows are never counted as loaded again)."""
    totals = {key: 0 for key, _ in ROW_COUNTS}
    for body in bodies:
        for key in totals:
            totals[key] += int(body.get(key) or 0)
    return ", ".join(
        f"{words} {totals[key]:,}"
        for key, words in ROW_COUNTS
        if totals[key] or key in ("rows_loaded", "rows_quarantined")
    )


def number(value: Any) -> Text:
    return Text(
        ""
        if value is None or value == ""
        else f"{value:,}"
        if isinstance(value, int)
        else str(value)
    )
