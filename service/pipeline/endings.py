"""How a streamed unit ends, as pure rules: a tally of what its stages saw in, a verdict out.

Every ending is defined: loaded (rows read = loaded + quarantined), rejected whole (too many bad
rows, more than one partition for a partition replacement, or a file-level fault such as a
truncated gzip or a table with another schema: loaded is 0, the bad rows are quarantined and the
good ones are counted as rejected, so rows read = quarantined + rejected and the quarantined
count is the number of rows the quarantine object holds), or a transient failure to retry. The
ledger records the counts of the first two.

Each rejection has two texts: ``reason`` for the operator (the ledger, the log: it may quote the
file's values) and ``category``, built from fixed phrases and counts only, which the service may
answer over HTTP.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from service.models import LoadResult, UnitResult
from service.pipeline.definition import BadRowPolicy, Pipeline

# Stages whose failure means the file was not read to its end.
UNREADABLE_STAGES = frozenset({"extract", "parse"})
# What a file-level fault in each stage is, in words that quote nothing from the file.
FAULT_CATEGORY = {
    "extract": "the object could not be read",
    "parse": "the file could not be parsed",
    "validate": "the file does not fit the table's schema",
    "spool": "the valid rows could not be written out",
    "load": "the warehouse refused the rows",
    "quarantine": "the quarantine could not be written",
}
# The category of a unit whose object (or its generation) no longer exists.
MISSING = "the object does not exist"
# Bad-row reasons (their kinds) named in a rejection's reason and kept in the ledger.
TOP_REASONS = 3


@dataclass
class Tally:
    """What the stages of one unit have seen so far; the stages add to it as they go."""

    rows_read: int = 0
    rows_valid: int = 0
    bad: int = 0
    days: set[date] = field(default_factory=set)
    durations: dict[str, float] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)  # bad rows per reason kind

    def timed(self, stage: str, seconds: float) -> None:
        self.durations[stage] = round(self.durations.get(stage, 0.0) + seconds, 6)

    def top_reasons(self) -> dict[str, int]:
        return dict(self.reasons.most_common(TOP_REASONS))


@dataclass(frozen=True)
class Load:
    """The valid rows are loaded; ``day`` is the partition a replacement overwrites."""

    day: date | None


@dataclass(frozen=True)
class Reject:
    """The file is rejected whole: none of its rows is loaded."""

    stage: str
    reason: str
    rows_read: int  # 0 when the file could not be read to its end: counts would be arbitrary
    quarantine: bool  # whether a quarantine object is written (it holds the reason)
    category: str  # the reason in fixed phrases and counts: safe to answer over HTTP

    @property
    def public(self) -> str:
        return f"{self.stage}: {self.category}"

    def result(self, table: str, quarantine_uri: str | None, tally: Tally) -> UnitResult:
        bad = tally.bad if self.quarantine else 0  # the rows the quarantine object holds
        return UnitResult(
            rows_read=self.rows_read,
            rows_loaded=0,
            rows_quarantined=bad,
            table=table,
            quarantine_uri=quarantine_uri,
            durations=tally.durations,
            rows_rejected=max(self.rows_read - bad, 0),
            bad_reasons=tally.top_reasons(),
        )


def threshold(policy: BadRowPolicy) -> str:
    """The pipeline's bad-row limit in words: "threshold 25%", "at most 100 rows"."""
    parts = []
    if policy.max_ratio is not None:
        parts.append(f"threshold {policy.max_ratio:.0%}" if policy.max_ratio else "none allowed")
    if policy.max_count is not None:
        parts.append(f"at most {policy.max_count:,} rows" if policy.max_count else "none allowed")
    return " or ".join(dict.fromkeys(parts)) or "no limit"


def verdict(tally: Tally, pipeline: Pipeline, *, stopped: bool) -> Load | Reject:
    """Once every row is read (or reading ``stopped`` at a count limit): load or reject."""
    if stopped or pipeline.bad_rows.exceeded(tally.bad, tally.rows_read):
        where = f" (reading stopped at row {tally.rows_read:,})" if stopped else ""
        category = (
            f"{tally.bad:,} of {tally.rows_read:,} rows bad, {threshold(pipeline.bad_rows)}{where}"
        )
        top = "; ".join(f"{kind} ({n:,})" for kind, n in tally.reasons.most_common(TOP_REASONS))
        reason = f"{category}; most frequent: {top}" if top else category
        return rejection(tally, "validate", reason, category)
    if pipeline.write_mode != "replace_partition":
        return Load(None)
    days = sorted(tally.days)
    if len(days) > 1:
        reason = f"the file spans {len(days)} partitions; it may replace only one"
        return rejection(tally, "validate", reason, reason)
    return Load(days[0] if days else None)


def rejection(
    tally: Tally, stage: str, reason: str, category: str | None = None, *, missing: bool = False
) -> Reject:
    """A permanent failure in ``stage``; a stage that reads the file leaves no row counts.
    Without a ``category``, the stage names the kind of fault (``missing``: no such object)."""
    whole = stage not in UNREADABLE_STAGES
    read = tally.rows_read if whole else 0
    quarantine = bool(read or (whole and tally.bad))
    if category is None:
        category = MISSING if missing else FAULT_CATEGORY.get(stage, "failed")
    return Reject(stage, reason, read, quarantine, category)


def loaded(tally: Tally, load: LoadResult, table: str, quarantine_uri: str | None) -> UnitResult:
    return UnitResult(
        rows_read=tally.rows_read,
        rows_loaded=load.rows_loaded,
        rows_quarantined=tally.bad,
        job_id=load.job_id,
        table=table,
        quarantine_uri=quarantine_uri,
        durations=tally.durations,
        bad_reasons=tally.top_reasons(),
    )
