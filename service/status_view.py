"""What the status page shows: the filters asked for, the counts per state, the recent units.

Pure but for the two ledger reads (one count per state, one listing); the route renders the
result as HTML or JSON and `ingest ledger` prints units with ``unit_view``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict
from urllib.parse import urlencode

from service.models import LedgerRecord, UnitState
from service.ports import IdempotencyStore

# Units listed when the request does not say, and the most it may ask for.
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Units counted per state before the count is shown as "at least" (on Firestore a count costs
# one document read per 1,000 units counted, so at most 10 reads per state).
COUNT_CAP = 10_000
# The longest pipeline name a filter may carry (names come from the request).
MAX_PIPELINE_CHARS = 200


class UnitView(TypedDict):
    key: str
    unit: str
    state: str
    pipeline: str
    object: str | None
    attempt: int
    rows_read: int | None
    rows_loaded: int | None
    rows_quarantined: int | None
    duration_seconds: float | None
    stages: dict[str, float]
    table: str | None
    quarantine_uri: str | None
    error: str | None
    event_id: str | None
    created_at: str
    updated_at: str


class CountView(TypedDict):
    count: int
    capped: bool  # True when there are at least `count` (the count stopped at COUNT_CAP)


class StatusView(TypedDict):
    generated_at: str
    backend: str
    state_filter: str | None
    pipeline_filter: str | None
    limit: int
    counts: dict[str, CountView]
    units: list[UnitView]


class BadQuery(ValueError):
    """A query parameter that cannot be used; answered 400."""


@dataclass(frozen=True)
class StatusQuery:
    """The filters of one request: every one is optional."""

    state: UnitState | None = None
    pipeline: str | None = None
    limit: int = DEFAULT_LIMIT


def parse_query(args: Mapping[str, str]) -> StatusQuery:
    """``?state=&pipeline=&limit=`` as a StatusQuery; BadQuery names what is wrong."""
    raw_state = args.get("state", "").strip().upper()
    raw_limit = args.get("limit", "").strip()
    pipeline = args.get("pipeline", "").strip() or None
    try:
        state = UnitState(raw_state) if raw_state else None
    except ValueError as exc:
        allowed = ", ".join(s.value for s in UnitState)
        raise BadQuery(f"state must be one of {allowed}") from exc
    if pipeline is not None and len(pipeline) > MAX_PIPELINE_CHARS:
        raise BadQuery(f"pipeline must be at most {MAX_PIPELINE_CHARS} characters")
    if not raw_limit:
        return StatusQuery(state, pipeline)
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise BadQuery(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return StatusQuery(state, pipeline, int(raw_limit))


def unit_view(record: LedgerRecord) -> UnitView:
    """One ledger record as plain JSON-ready values (also what `ingest ledger` prints)."""
    result = record.result
    # Claim to last update: the unit's run time once finished, its age while in progress.
    duration = (record.updated_at - record.created_at).total_seconds()
    return {
        "key": record.key,
        "unit": record.unit,
        "state": record.state.value,
        "pipeline": record.pipeline,
        "object": record.object_uri,
        "attempt": record.attempt,
        "rows_read": result.rows_read if result else None,
        "rows_loaded": result.rows_loaded if result else None,
        "rows_quarantined": result.rows_quarantined if result else None,
        "duration_seconds": round(duration, 3),
        "stages": dict(result.durations) if result else {},
        "table": result.table if result else None,
        "quarantine_uri": result.quarantine_uri if result else None,
        "error": record.error,
        "event_id": record.event_id,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }


async def snapshot(store: IdempotencyStore, *, backend: str, query: StatusQuery) -> StatusView:
    """The page's data: counts per state (of the pipeline asked for) and the recent units."""
    found = await asyncio.gather(
        *(store.count(s, pipeline=query.pipeline, up_to=COUNT_CAP) for s in UnitState)
    )
    counts: dict[str, CountView] = {
        state.value: {"count": n, "capped": n >= COUNT_CAP}
        for state, n in zip(UnitState, found, strict=True)
    }
    listed = await store.list(state=query.state, limit=query.limit, pipeline=query.pipeline)
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": backend,
        "state_filter": query.state.value if query.state else None,
        "pipeline_filter": query.pipeline,
        "limit": query.limit,
        "counts": counts,
        "units": [unit_view(s.record) for s in listed],
    }


def filter_link(
    view: StatusView, state: str | None, *, page: str = "", all_pipelines: bool = False
) -> str:
    """A link to ``page`` filtered by ``state`` and, unless ``all_pipelines``, this pipeline."""
    pipeline = None if all_pipelines else view["pipeline_filter"]
    params = {"state": state, "pipeline": pipeline}
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{page}?{query}" if query else page or "?"
