"""endings: a tally in, a verdict out (loaded, or rejected whole with the counts to record)."""

from __future__ import annotations

from datetime import date

import pytest

from service.models import LoadResult, UnitResult
from service.pipeline.definition import BadRowPolicy
from service.pipeline.endings import (
    FAULT_CATEGORY,
    Load,
    Reject,
    Tally,
    loaded,
    rejection,
    threshold,
    verdict,
)
from tests.pipeline_support import pipeline

DAY = date(2026, 11, 20)


def tally(read: int = 10, bad: int = 0, days: tuple[date, ...] = ()) -> Tally:
    return Tally(rows_read=read, rows_valid=read - bad, bad=bad, days=set(days))


def test_bad_rows_within_the_policy_are_loaded() -> None:
    assert verdict(tally(10, bad=5), pipeline(), stopped=False) == Load(None)


def test_bad_rows_over_the_ratio_reject_the_file_and_say_the_threshold() -> None:
    seen = tally(10, bad=6)
    seen.reasons.update({"id: … is not a valid INTEGER": 5, "expected 4 columns, found 3": 1})
    ending = verdict(seen, pipeline(), stopped=False)
    category = "6 of 10 rows bad, threshold 50%"
    assert ending == Reject(
        "validate",
        f"{category}; most frequent: id: … is not a valid INTEGER (5);"
        " expected 4 columns, found 3 (1)",
        10,
        quarantine=True,
        category=category,
    )
    assert ending.public == "validate: 6 of 10 rows bad, threshold 50%"


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        (BadRowPolicy(), "none allowed"),
        (BadRowPolicy(max_ratio=0.25), "threshold 25%"),
        (BadRowPolicy(max_count=100, max_ratio=None), "at most 100 rows"),
        (BadRowPolicy(max_count=3, max_ratio=0.1), "threshold 10% or at most 3 rows"),
    ],
)
def test_the_threshold_in_words(policy: BadRowPolicy, words: str) -> None:
    assert threshold(policy) == words


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
    spans = "the file spans 2 partitions; it may replace only one"
    assert ending == Reject("validate", spans, 10, quarantine=True, category=spans)


def test_an_appending_pipeline_ignores_the_days_seen() -> None:
    assert verdict(tally(days=(DAY, date(2026, 11, 21))), pipeline(), stopped=False) == Load(None)


@pytest.mark.parametrize("stage", ["extract", "parse"])
def test_a_file_not_read_to_its_end_has_no_counts_and_no_quarantine(stage: str) -> None:
    ending = rejection(tally(10, bad=2), stage, "gzip stream is truncated")
    category = FAULT_CATEGORY[stage]
    assert ending == Reject(stage, "gzip stream is truncated", 0, False, category)
    assert "gzip" not in ending.public  # the category quotes nothing from the error


def test_a_later_stage_rejects_every_row_read() -> None:
    ending = rejection(tally(10), "load", "table exists with another schema")
    category = "the warehouse refused the rows"
    assert ending == Reject("load", "table exists with another schema", 10, True, category)
    assert rejection(tally(0), "extract", "gone", missing=True).public == (
        "extract: the object does not exist"
    )
    assert rejection(tally(0), "load", "x").quarantine is False  # nothing to account for


def test_the_recorded_counts_of_each_ending() -> None:
    seen = tally(10, bad=2)
    seen.timed("load", 0.5)
    seen.reasons["x: … is not a valid DATE"] = 2
    done = loaded(seen, LoadResult("job", 8), "sales.orders", "gs://q/x.jsonl")
    assert done == UnitResult(
        10,
        8,
        2,
        "job",
        "sales.orders",
        "gs://q/x.jsonl",
        {"load": 0.5},
        bad_reasons={"x: … is not a valid DATE": 2},
    )
    refused = rejection(seen, "validate", "too many").result("sales.orders", None, seen)
    # The quarantine holds the 2 bad rows; the 8 good ones are rejected with the file.
    counts = (refused.rows_read, refused.rows_loaded, refused.rows_quarantined)
    assert (*counts, refused.rows_rejected) == (10, 0, 2, 8)
