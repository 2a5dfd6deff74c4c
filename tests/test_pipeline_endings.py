"""endings: a tally in, a verdict out (loaded, or rejected whole with the counts to record)."""

from __future__ import annotations

from datetime import date

import pytest

from service.models import LoadResult, UnitResult
from service.pipeline.definition import BadRowPolicy
from service.pipeline.endings import Load, Reject, Tally, loaded, rejection, verdict
from tests.pipeline_support import pipeline

DAY = date(2026, 11, 20)


def tally(read: int = 10, bad: int = 0, days: tuple[date, ...] = ()) -> Tally:
    return Tally(rows_read=read, rows_valid=read - bad, bad=bad, days=set(days))


def test_bad_rows_within_the_policy_are_loaded() -> None:
    assert verdict(tally(10, bad=5), pipeline(), stopped=False) == Load(None)


def test_bad_rows_over_the_ratio_reject_every_row_read() -> None:
    ending = verdict(tally(10, bad=6), pipeline(), stopped=False)
    assert ending == Reject(
        "validate", "6 bad rows of 10 exceed the pipeline's threshold", 10, quarantine=True
    )


def test_reading_stopped_at_a_count_limit_says_where() -> None:
    strict = pipeline(bad_rows=BadRowPolicy(max_count=2, max_ratio=None))
    ending = verdict(tally(4, bad=3), strict, stopped=True)
    assert isinstance(ending, Reject)
    assert ending.reason.endswith("(reading stopped at row 4)")
    assert ending.rows_read == 4


def test_a_replacement_loads_its_one_day() -> None:
    replacing = pipeline(write_mode="replace_partition", partition_date="column")
    assert verdict(tally(days=(DAY,)), replacing, stopped=False) == Load(DAY)
    assert verdict(tally(0), replacing, stopped=False) == Load(None)


def test_a_replacement_spanning_two_days_is_rejected() -> None:
    replacing = pipeline(write_mode="replace_partition", partition_date="column")
    ending = verdict(tally(days=(DAY, date(2026, 11, 21))), replacing, stopped=False)
    assert ending == Reject(
        "validate", "the file spans 2 partitions; it may replace only one", 10, quarantine=True
    )


def test_an_appending_pipeline_ignores_the_days_seen() -> None:
    assert verdict(tally(days=(DAY, date(2026, 11, 21))), pipeline(), stopped=False) == Load(None)


@pytest.mark.parametrize("stage", ["extract", "parse"])
def test_a_file_not_read_to_its_end_has_no_counts_and_no_quarantine(stage: str) -> None:
    ending = rejection(tally(10, bad=2), stage, "gzip stream is truncated")
    assert ending == Reject(stage, "gzip stream is truncated", 0, quarantine=False)


def test_a_later_stage_rejects_every_row_read() -> None:
    ending = rejection(tally(10), "load", "table exists with another schema")
    assert ending == Reject("load", "table exists with another schema", 10, quarantine=True)
    assert rejection(tally(0), "load", "x").quarantine is False  # nothing to account for


def test_the_recorded_counts_of_each_ending() -> None:
    seen = tally(10, bad=2)
    seen.timed("load", 0.5)
    done = loaded(seen, LoadResult("job", 8), "sales.orders", "gs://q/x.jsonl")
    assert done == UnitResult(10, 8, 2, "job", "sales.orders", "gs://q/x.jsonl", {"load": 0.5})
    refused = rejection(seen, "validate", "too many").result("sales.orders", None, seen)
    assert (refused.rows_read, refused.rows_loaded, refused.rows_quarantined) == (10, 0, 10)
