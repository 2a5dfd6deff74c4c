"""What handling an event produced: a status per unit and per event, the counts, and how
several units' outcomes combine into the one answer an event gets. Values only."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """What happened, ordered from best to worst for combining several units."""

    LOADED = "loaded"
    PUBLISHED = "published"  # a sweep fanned out: its units run as work messages
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    FAILED = "failed"  # permanent, recorded: acknowledged, not retried
    BUSY = "busy"  # in progress elsewhere: retry later
    TRANSIENT = "transient"  # retry


SEVERITY = {s: i for i, s in enumerate(Status)}
# Log level of the one line each unit outcome gets.
UNIT_LOG_LEVEL = {
    Status.LOADED: logging.INFO,
    Status.PUBLISHED: logging.INFO,
    Status.DUPLICATE: logging.INFO,
    Status.IGNORED: logging.INFO,
    Status.FAILED: logging.ERROR,
    Status.BUSY: logging.INFO,
    Status.TRANSIENT: logging.WARNING,
}


@dataclass(frozen=True)
class UnitOutcome:
    unit: str
    status: Status
    rows_loaded: int = 0
    rows_quarantined: int = 0
    error: str | None = None
    stage: str | None = None
    reason: str | None = None  # why nothing was loaded, when that is no error
    stage_seconds: tuple[tuple[str, float], ...] = ()  # a loaded unit's time in each stage
    rows_rejected: int = 0  # good rows of a file rejected whole (not in the quarantine)
    public_reason: str | None = None  # stage and category, fixed phrases: safe to answer


@dataclass(frozen=True)
class Outcome:
    status: Status
    event_id: str
    reason: str | None = None
    units: tuple[UnitOutcome, ...] = field(default=())
    swept: int | None = None  # objects a sweep listed and matched
    published: int | None = None  # work messages a fanned-out sweep published

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for unit in self.units:
            counts[unit.status.value] = counts.get(unit.status.value, 0) + 1
        body: dict[str, Any] = {"status": self.status.value, "event_id": self.event_id}
        if self.reason:
            body["reason"] = self.reason
        if self.units:
            # Rows count where this run put them; a duplicate's rows were loaded by an earlier
            # run and are reported apart, never as loaded again.
            ran = [u for u in self.units if u.status is not Status.DUPLICATE]
            body["units"] = counts
            body["rows_loaded"] = sum(u.rows_loaded for u in ran)
            body["rows_quarantined"] = sum(u.rows_quarantined for u in ran)
            body["rows_rejected"] = sum(u.rows_rejected for u in ran)
            body["rows_already_loaded"] = sum(
                u.rows_loaded for u in self.units if u.status is Status.DUPLICATE
            )
        if self.published is not None:
            body["fanout"] = {"objects": self.swept or 0, "published": self.published}
        elif self.swept is not None:
            body["sweep"] = sweep_counts(self.swept, self.units)
        return body


# How a sweep reports each unit: skipped = already done; a unit that failed in an earlier run
# (acknowledged, re-run only by a forced replay) counts as failed.
SWEEP_COUNT = {
    Status.LOADED: "loaded",
    Status.PUBLISHED: "loaded",
    Status.DUPLICATE: "skipped",
    Status.IGNORED: "skipped",
    Status.FAILED: "failed",
    Status.BUSY: "retry",
    Status.TRANSIENT: "retry",
}


def sweep_counts(objects: int, units: tuple[UnitOutcome, ...]) -> dict[str, int]:
    counts = {"objects": objects, "loaded": 0, "skipped": 0, "failed": 0, "retry": 0}
    for unit in units:
        failed_before = unit.status is Status.DUPLICATE and unit.error is not None
        counts["failed" if failed_before else SWEEP_COUNT[unit.status]] += 1
    return counts


def combine(event_id: str, units: list[UnitOutcome], reason: str | None = None) -> Outcome:
    worst = max((u.status for u in units), key=SEVERITY.__getitem__, default=Status.IGNORED)
    if reason is None and len(units) == 1:
        reason = units[0].reason
    return Outcome(worst, event_id, reason, tuple(units))
