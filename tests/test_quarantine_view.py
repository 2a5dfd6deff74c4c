"""service/quarantine_view.py: a quarantine object's lines grouped by reason kind."""

from __future__ import annotations

import json

import pytest

from service.errors import PermanentError
from service.quarantine_view import SAMPLES_PER_REASON, summarize


def line(row: int | None, reason: str, raw: str | None) -> bytes:
    return json.dumps({"row": row, "reason": reason, "raw": raw}).encode()


def test_rows_are_grouped_by_reason_kind_most_frequent_first() -> None:
    lines = [line(n, f"amount: 'x{n}' is not a valid NUMERIC", f"{n},x{n}") for n in range(1, 6)]
    lines.append(line(9, "expected 2 columns, found 3", "9,a,b"))
    lines.append(line(None, "6 of 9 rows bad, threshold 25%", None))
    report = summarize("gs://q/o.jsonl", [*lines, b""])
    assert report.bad_rows == 6
    assert report.file_reason == "6 of 9 rows bad, threshold 25%"
    first, second = report.groups
    assert (first.kind, first.count) == ("amount: … is not a valid NUMERIC", 5)
    assert [s.row for s in first.samples] == list(range(1, SAMPLES_PER_REASON + 1))
    assert first.samples[0].reason == "amount: 'x1' is not a valid NUMERIC"
    assert (second.kind, second.count, second.samples[0].raw) == (
        "expected 2 columns, found 3",
        1,
        "9,a,b",
    )
    assert report.as_json()["reasons"][1]["rows"] == 1  # type: ignore[index]


def test_long_raw_rows_are_clipped_in_samples() -> None:
    report = summarize("gs://q/o.jsonl", [line(1, "x", "a" * 1000)])
    assert len(report.groups[0].samples[0].raw) == 201


def test_a_line_not_of_the_layout_is_an_error() -> None:
    with pytest.raises(PermanentError, match="line 2 is not a quarantine line"):
        summarize("gs://q/o.jsonl", [line(1, "x", "a"), b'{"row": 2}'])
