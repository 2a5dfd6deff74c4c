"""Rules for single values of the pipelines file: strptime formats and the names Google accepts.

Each rule returns the problem as text (None when the value is fine); the reader puts the file,
the pipeline and the field in front of it. Checked at start-up, so a bad value fails once in
``check-config`` instead of failing every row or every load.
"""

from __future__ import annotations

import re
import unicodedata

from service.events.storage import BUCKET_NAME

# Python's strptime directives ("strftime() and strptime() Format Codes", Python 3.11 docs).
STRPTIME_DIRECTIVES = frozenset("aAwdbBmyYHIpMSfzZjUWcxXGuV%")
# A directive: '%' and the character after it (none when the format ends with '%').
DIRECTIVE = re.compile(r"%(.?)", re.DOTALL)
# Java/ICU pattern letters (yyyy-MM-dd HH:mm:ss) left in a format's literal text.
JAVA_STYLE = re.compile(r"y{2,}|M{2,}|d{2,}|H{2,}|h{2,}|m{2,}|s{2,}|S{2,}")
# Directives that name a weekday: an ISO year and week (%G, %V) need one to give a date.
WEEKDAYS = frozenset("aAwu")
# BigQuery dataset ids: letters, digits and underscores, at most 1,024 characters.
DATASET_NAME = re.compile(r"[A-Za-z0-9_]{1,1024}")
# Unicode categories of a BigQuery table name: letters, marks, numbers, connectors, dashes, spaces.
TABLE_NAME_CATEGORIES = ("L", "M", "N", "Pc", "Pd", "Zs")
TABLE_NAME_MAX_BYTES = 1024
# Pipeline names go into load job ids (`ingest_<name>_<digest>`: letters, digits, '_', '-', at
# most 1,024 characters), quarantine object names and ledger keys; 128 keeps all of them short.
PIPELINE_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")


def strptime_problem(fmt: str) -> str | None:
    """Why ``fmt`` cannot be a strptime format, or None."""
    found = DIRECTIVE.findall(fmt)
    for directive in found:
        if not directive:
            return f"{fmt!r} ends with a lone '%'"
        if directive not in STRPTIME_DIRECTIVES:
            return (
                f"%{directive} is not a strptime directive"
                f" (known: {' '.join('%' + d for d in sorted(STRPTIME_DIRECTIVES))})"
            )
    java = JAVA_STYLE.search(DIRECTIVE.sub("", fmt))
    if java is not None or not set(found) - {"%"}:
        return (
            f"{fmt!r} is not a strptime format (Java-style {java.group() if java else 'pattern'}?):"
            " write %Y-%m-%d for yyyy-MM-dd, %H:%M:%S for HH:mm:ss"
        )
    if ("G" in found or "V" in found) and not ({"G", "V"} <= set(found) and WEEKDAYS & set(found)):
        return "%G and %V go together, with a weekday directive (%a, %A, %w or %u)"
    return None


def dataset_problem(name: str) -> str | None:
    return _unless(
        DATASET_NAME,
        name,
        f"dataset {name!r}: BigQuery allows letters, digits and '_' (at most 1,024)",
    )


def table_problem(name: str) -> str | None:
    if not name or len(name.encode("utf-8")) > TABLE_NAME_MAX_BYTES:
        return f"table {name!r}: must be 1 to {TABLE_NAME_MAX_BYTES} bytes"
    for char in name:
        category = unicodedata.category(char)
        if not category.startswith(TABLE_NAME_CATEGORIES):
            return (
                f"table {name!r}: BigQuery does not allow {char!r} (letters, marks, numbers,"
                " connectors such as '_', dashes and spaces)"
            )
    return None


def bucket_problem(name: str) -> str | None:
    return _unless(BUCKET_NAME, name, f"{name!r} is not a bucket name (3 to 222 of a-z 0-9 - _ .)")


def pipeline_name_problem(name: str) -> str | None:
    return _unless(
        PIPELINE_NAME,
        name,
        f"{name!r}: use letters, digits, '_' and '-' (at most 128): it is part of job ids",
    )


def _unless(pattern: re.Pattern[str], name: str, problem: str) -> str | None:
    return None if pattern.fullmatch(name) else problem
