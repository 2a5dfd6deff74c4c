"""How a streamed unit ends, as pure rules: a tally of what its stages saw in, a verdict out.

Every ending is defined: loaded (rows read = loaded + quarantined), rejected whole (too many bad
rows, more than one partition for a partition replacement, or a file-level fault such as a
truncated gzip or a table with another schema: all rows read count as quarantined, loaded is 0),
or a transient failure to retry. The ledger records the counts of the first two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from service.models import LoadResult, UnitResult
from service.pipeline.definition import Pipeline

# Stages whose failure means the file was not read to its end.
UNREADABLE_STAGES = frozenset({"extract", "parse"})


@dataclass
class Tally:
    """What the stages of one unit have seen so far; the stages add to it as they go."""

    rows_read: int = 0
    rows_valid: int = 0
    bad: int = 0
    days: set[date] = field(default_factory=set)
    durations: dict[str, float] = field(default_factory=dict)

    def timed(self, stage: str, seconds: float) -> None:
        self.durations[stage] = round(self.durations.get(stage, 0.0) + seconds, 6)


@dataclass(frozen=True)
class Load:
    """The valid rows are loaded; ``day`` is the partition a replacement overwrites."""

    day: date | None


@dataclass(frozen=True)
class Reject:
    """The file is rejected whole: every row read counts as quarantined, none is loaded."""

    stage: str
    reason: str
    rows_read: int  # 0 when the file could not be read to its end: counts would be arbitrary
    quarantine: bool  # whether a quarantine object is written (it holds the reason)

    def result(self, table: str, quarantine_uri: str | None, tally: Tally) -> UnitResult:
        return UnitResult(
            rows_read=self.rows_read,
            rows_loaded=0,
            rows_quarantined=self.rows_read,
            table=table,
            quarantine_uri=quarantine_uri,
            durations=tally.durations,
        )


def verdict(tally: Tally, pipeline: Pipeline, *, stopped: bool) -> Load | Reject:
    """Once every row is read (or reading ``stopped`` at a count limit): load or reject."""
    if stopped or pipeline.bad_rows.exceeded(tally.bad, tally.rows_read):
        where = f" (reading stopped at row {tally.rows_read})" if stopped else ""
        reason = f"{tally.bad} bad rows of {tally.rows_read} exceed the pipeline's threshold"
        return rejection(tally, "validate", reason + where)
    if pipeline.write_mode != "replace_partition":
        return Load(None)
    days = sorted(tally.days)
    if len(days) > 1:
        reason = f"the file spans {len(days)} partitions; it may replace only one"
        return rejection(tally, "validate", reason)
    return Load(days[0] if days else None)


def rejection(tally: Tally, stage: str, reason: str) -> Reject:
    """A permanent failure in ``stage``; a stage that reads the file leaves no row counts."""
    whole = stage not in UNREADABLE_STAGES
    read = tally.rows_read if whole else 0
    return Reject(stage, reason, read, quarantine=bool(read or (whole and tally.bad)))


def loaded(tally: Tally, load: LoadResult, table: str, quarantine_uri: str | None) -> UnitResult:
    return UnitResult(
        rows_read=tally.rows_read,
        rows_loaded=load.rows_loaded,
        rows_quarantined=tally.bad,
        job_id=load.job_id,
        table=table,
        quarantine_uri=quarantine_uri,
        durations=tally.durations,
    )
