"""What would run for one event, decided without I/O: the use case's plan and every dry run's.

The ingestor derives its units and a sweep's prefix here, and so do ``replay --dry-run``,
``sweep --dry-run`` and the dead-letter commands, so a dry run cannot drift from what runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from service.models import (
    Event,
    Ignored,
    ObjectInfo,
    ObjectRef,
    SweepRequested,
    UnitKey,
    UnitRequested,
    UnitState,
)
from service.pipeline.definition import Pipeline, PipelineSet


class Verdict(StrEnum):
    """What a dry run says the service would do with an event."""

    RUN = "would-run"
    SWEEP = "would-sweep"
    IGNORE = "would-ignore"


@dataclass(frozen=True)
class Plan:
    verdict: Verdict
    reason: str  # for the operator: it names objects and pipelines (never sent to a caller)
    units: tuple[UnitKey, ...] = ()
    where: str | None = None  # a sweep's source, gs://BUCKET/PREFIX


def unit_key(pipeline: Pipeline, ref: ObjectRef) -> UnitKey:
    if ref.generation is None:
        raise ValueError(f"{ref.uri} names no generation: it is no unit")
    return UnitKey(pipeline.name, ref.bucket, ref.name, ref.generation)


def sweep_prefix(pipeline: Pipeline, event: SweepRequested) -> str:
    return event.prefix or pipeline.prefix_for(event.date)


def swept_objects(
    pipeline: Pipeline, event: SweepRequested, listed: Iterable[ObjectInfo], now: datetime
) -> list[ObjectInfo]:
    """The listed generations a sweep of ``pipeline`` runs.

    An undated sweep lists the pipeline's whole prefix; a file older than the ledger's
    retention has no record left, so without the lookback window it would be loaded a second
    time. A sweep for a date (or a prefix) is an operator's deliberate backfill: not bounded.
    """
    found = [
        o
        for o in listed
        if o.ref.generation is not None and pipeline.matches(o.ref.bucket, o.ref.name)
    ]
    if event.date is None and event.prefix is None:
        return recent(found, pipeline.sweep_lookback_days, now)
    return found


def recent(objects: list[ObjectInfo], lookback_days: int, now: datetime) -> list[ObjectInfo]:
    """The objects written within the lookback window (an unknown time counts as recent)."""
    cutoff = now - timedelta(days=lookback_days)
    return [o for o in objects if o.updated is None or o.updated >= cutoff]


def needs_work(state: UnitState | None) -> bool:
    """Whether a fanned-out sweep publishes a unit the ledger has in ``state`` (None: no record).

    A finished unit (COMPLETED, or FAILED and so acknowledged) would only be answered from the
    ledger; a unit in progress is published again, since its owner may have died.
    """
    return state not in (UnitState.COMPLETED, UnitState.FAILED)


def sweep_key(event: SweepRequested, pipeline: Pipeline, prefix: str) -> str:
    """The key of one sweep's listing cursor: the same for a redelivery of the same request."""
    text = f"{event.meta.event_id}|{pipeline.name}|{pipeline.bucket}|{prefix}"
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def plan(pipelines: PipelineSet, event: Event) -> Plan:
    if isinstance(event, Ignored):
        return Plan(Verdict.IGNORE, event.reason)
    if isinstance(event, UnitRequested):
        return _requested_plan(pipelines, event)
    if isinstance(event, SweepRequested):
        pipeline = pipelines.get(event.pipeline)
        if pipeline is None:
            return Plan(Verdict.IGNORE, f"unknown pipeline {event.pipeline}")
        where = f"gs://{pipeline.bucket}/{sweep_prefix(pipeline, event)}"
        return Plan(Verdict.SWEEP, f"list {where}", where=where)
    ref = event.object.ref
    matching = pipelines.matching(ref.bucket, ref.name)
    if not matching or ref.generation is None:
        return Plan(Verdict.IGNORE, f"no pipeline matches {ref.uri}")
    units = tuple(unit_key(p, ref) for p in matching)
    return Plan(Verdict.RUN, ", ".join(str(u) for u in units), units)


def _requested_plan(pipelines: PipelineSet, event: UnitRequested) -> Plan:
    """A work message runs the one unit it names, for its pipeline only."""
    pipeline = pipelines.get(event.pipeline)
    ref = event.object.ref
    if pipeline is None or not pipeline.matches(ref.bucket, ref.name):
        return Plan(Verdict.IGNORE, f"pipeline {event.pipeline} does not take {ref.uri}")
    unit = unit_key(pipeline, ref)
    return Plan(Verdict.RUN, str(unit), (unit,))
