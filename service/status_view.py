"""What the status page shows: the filters asked for, the counts per state, the recent units,
and one unit's detail.

Pure but for the ledger reads (one count per state, one listing, or one unit); the route renders
the result as HTML or JSON and `ingest ledger` prints units with ``unit_view``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypedDict
from urllib.parse import urlencode

from service.models import LedgerRecord, UnitState
from service.ports import IdempotencyStore, LedgerQuery

# Units listed when the request does not say, and the most it may ask for.
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Units counted per state before the count is shown as "at least" (on Firestore a count costs
# one document read per 1,000 units counted, so at most 10 reads per state).
COUNT_CAP = 10_000
# The longest pipeline name a filter may carry (names come from the request).
MAX_PIPELINE_CHARS = 200
# Seconds between the page's reloads unless ?refresh= says (0: never), and the most allowed.
DEFAULT_REFRESH = 15
MAX_REFRESH = 3600
# Relative ages (?since=30m, --since 2h): a number and one of these units, in seconds.
AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A ledger key as the detail page's address carries it.
LEDGER_KEY = re.compile(r"[0-9a-f]{40}")


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
    rows_rejected: int | None
    duration_seconds: float | None  # the attempt that ended the unit (None while running)
    age_seconds: float  # first claim to last update, over every attempt
    stages: dict[str, float]
    bad_reasons: dict[str, int]
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
    since_filter: str | None  # as asked (30m, an ISO instant): units updated since then
    refresh: int  # seconds between reloads of the page; 0 = never
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
    since: datetime | None = None
    since_text: str | None = None  # as asked, for links and the page
    refresh: int = DEFAULT_REFRESH


def parse_instant(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 instant (UTC when no offset) or an age such as 30m, 2h, 7d before ``now``;
    ValueError names what is wrong."""
    text = text.strip()
    unit = AGE_UNITS.get(text[-1:].lower())
    if unit is not None and text[:-1].isdigit():
        return (now or datetime.now(UTC)) - timedelta(seconds=int(text[:-1]) * unit)
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is neither an ISO 8601 time nor an age like 30m, 2h, 7d"
        ) from exc
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def parse_query(args: Mapping[str, str]) -> StatusQuery:
    """``?state=&pipeline=&since=&limit=&refresh=`` as a StatusQuery; BadQuery says what is
    wrong."""
    raw_state = args.get("state", "").strip().upper()
    pipeline = args.get("pipeline", "").strip() or None
    since_text = args.get("since", "").strip() or None
    try:
        state = UnitState(raw_state) if raw_state else None
    except ValueError as exc:
        allowed = ", ".join(s.value for s in UnitState)
        raise BadQuery(f"state must be one of {allowed}") from exc
    if pipeline is not None and len(pipeline) > MAX_PIPELINE_CHARS:
        raise BadQuery(f"pipeline must be at most {MAX_PIPELINE_CHARS} characters")
    try:
        since = parse_instant(since_text) if since_text else None
    except ValueError as exc:
        raise BadQuery("since must be an ISO 8601 time or an age like 30m, 2h, 7d") from exc
    limit = _whole(args, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    refresh = _whole(args, "refresh", DEFAULT_REFRESH, 0, MAX_REFRESH)
    return StatusQuery(state, pipeline, limit, since, since_text, refresh)


def _whole(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadQuery(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def unit_view(record: LedgerRecord) -> UnitView:
    """One ledger record as plain JSON-ready values (also what `ingest ledger` prints)."""
    result = record.result
    age = (record.updated_at - record.created_at).total_seconds()
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
        "rows_rejected": result.rows_rejected if result else None,
        "duration_seconds": round(result.seconds, 3) if result and result.seconds else None,
        "age_seconds": round(age, 3),
        "stages": dict(result.durations) if result else {},
        "bad_reasons": dict(result.bad_reasons) if result else {},
        "table": result.table if result else None,
        "quarantine_uri": result.quarantine_uri if result else None,
        "error": record.error,
        "event_id": record.event_id,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }


async def snapshot(store: IdempotencyStore, *, backend: str, query: StatusQuery) -> StatusView:
    """The page's data: counts per state (of the pipeline asked for) and the recent units."""
    asked = LedgerQuery(query.state, query.pipeline, query.since)
    found = await asyncio.gather(
        *(store.count(replace(asked, state=s), up_to=COUNT_CAP) for s in UnitState)
    )
    counts: dict[str, CountView] = {
        state.value: {"count": n, "capped": n >= COUNT_CAP}
        for state, n in zip(UnitState, found, strict=True)
    }
    listed = await store.list(asked, limit=query.limit)
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": backend,
        "state_filter": query.state.value if query.state else None,
        "pipeline_filter": query.pipeline,
        "since_filter": query.since_text,
        "refresh": query.refresh,
        "limit": query.limit,
        "counts": counts,
        "units": [unit_view(s.record) for s in listed],
    }


def filter_link(
    view: StatusView, state: str | None, *, page: str = "", all_pipelines: bool = False
) -> str:
    """A link to ``page`` filtered by ``state`` and, unless ``all_pipelines``, this pipeline."""
    pipeline = None if all_pipelines else view["pipeline_filter"]
    params = {"state": state, "pipeline": pipeline, "since": view["since_filter"]}
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{page}?{query}" if query else page or "?"


async def unit_detail(store: IdempotencyStore, key: str) -> UnitView | None:
    """One unit for the detail page; None when the key is no ledger key or names no unit."""
    if not LEDGER_KEY.fullmatch(key):
        return None
    stored = await store.get(key)
    return unit_view(stored.record) if stored else None
