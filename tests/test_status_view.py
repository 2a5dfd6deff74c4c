"""The status page's view model: filters from the query, counts from the count primitive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service import status_view
from service.adapters.memory import MemoryLedgerStore
from service.models import Stored, UnitResult, UnitState
from service.status_view import (
    DEFAULT_LIMIT,
    MAX_PIPELINE_CHARS,
    BadQuery,
    StatusQuery,
    filter_link,
    parse_instant,
    parse_query,
    snapshot,
    unit_detail,
    unit_view,
)
from tests.test_ledger import record

START = datetime(2026, 11, 21, 12, 0, 0, 123456, tzinfo=UTC)  # tests.test_ledger.record's


def test_unit_view_of_a_record_in_progress() -> None:
    view = unit_view(record("a", updated_at=START + timedelta(seconds=90)))
    assert (view["state"], view["age_seconds"], view["duration_seconds"], view["rows_loaded"]) == (
        "IN_PROGRESS",
        90.0,
        None,
        None,
    )
    done = unit_view(record("a", state=UnitState.COMPLETED, result=UnitResult(10, 9, 1)))
    assert (done["rows_read"], done["rows_loaded"], done["rows_quarantined"]) == (10, 9, 1)


def test_the_duration_is_the_last_attempts_not_the_span_of_every_attempt() -> None:
    retried = record(
        "a",
        state=UnitState.COMPLETED,
        attempt=2,
        updated_at=START + timedelta(seconds=11.1),
        result=UnitResult(10, 10, seconds=1.4, bad_reasons={"x: … is not a valid DATE": 3}),
    )
    view = unit_view(retried)
    assert (view["duration_seconds"], view["age_seconds"], view["attempt"]) == (1.4, 11.1, 2)
    assert view["bad_reasons"] == {"x: … is not a valid DATE": 3}


def test_since_takes_an_age_or_an_instant() -> None:
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert parse_instant("30m", now) == now - timedelta(minutes=30)
    assert parse_instant("2026-11-20T10:00:00", now) == datetime(2026, 11, 20, 10, tzinfo=UTC)
    query = parse_query({"since": "2h", "refresh": "0"})
    assert (query.since_text, query.refresh) == ("2h", 0)
    assert query.since is not None
    with pytest.raises(ValueError, match="neither an ISO 8601 time nor an age"):
        parse_instant("soon", now)


async def test_since_narrows_the_listing_and_a_unit_is_found_by_key() -> None:
    store = MemoryLedgerStore()
    await store.create(record("old", updated_at=START - timedelta(days=2)))
    await store.create(record("new", updated_at=START))
    since = StatusQuery(since=START - timedelta(hours=1), since_text="1h")
    view = await snapshot(store, backend="embedded", query=since)
    assert [u["key"] for u in view["units"]] == ["new"]
    assert view["since_filter"] == "1h"
    assert filter_link(view, "FAILED") == "?state=FAILED&since=1h"
    key = "a" * 40
    await store.create(record(key))
    found = await unit_detail(store, key)
    assert found is not None and found["key"] == key
    assert await unit_detail(store, "b" * 40) is None
    assert await unit_detail(store, "../etc") is None


def test_the_query_has_defaults_and_reads_every_filter() -> None:
    assert parse_query({}) == StatusQuery(None, None, DEFAULT_LIMIT)
    assert parse_query({"state": " failed ", "pipeline": " orders ", "limit": "7"}) == (
        StatusQuery(UnitState.FAILED, "orders", 7)
    )
    assert parse_query({}).refresh == 15
    assert parse_query({"pipeline": "  "}).pipeline is None


def test_an_overlong_pipeline_is_a_bad_query() -> None:
    parse_query({"pipeline": "p" * MAX_PIPELINE_CHARS})
    with pytest.raises(BadQuery, match="pipeline must be at most"):
        parse_query({"pipeline": "p" * (MAX_PIPELINE_CHARS + 1)})


async def test_counts_come_from_the_count_primitive_not_from_listings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = MemoryLedgerStore()
    listings: list[object] = []
    real_list = store.list

    async def listing(*args: Any, **kwargs: Any) -> list[Stored]:
        listings.append(kwargs.get("limit"))
        return await real_list(*args, **kwargs)

    monkeypatch.setattr(store, "list", listing)
    for i in range(1001):  # more than the 1,000 a listing-based count stopped at
        await store.create(record(f"k{i}", state=UnitState.COMPLETED))
    view = await snapshot(store, backend="embedded", query=StatusQuery(limit=5))
    assert view["counts"]["COMPLETED"] == {"count": 1001, "capped": False}
    assert listings == [5]  # one listing, for the rows shown
    assert len(view["units"]) == 5


async def test_counts_stop_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_view, "COUNT_CAP", 2)
    store = MemoryLedgerStore()
    for i in range(3):
        await store.create(record(f"k{i}", state=UnitState.FAILED))
    await store.create(record("c", state=UnitState.COMPLETED))
    view = await snapshot(store, backend="embedded", query=StatusQuery())
    assert view["counts"]["FAILED"] == {"count": 2, "capped": True}  # shown as "2+"
    assert view["counts"]["COMPLETED"] == {"count": 1, "capped": False}


async def test_a_pipeline_narrows_counts_and_units() -> None:
    store = MemoryLedgerStore()
    await store.create(record("o1", state=UnitState.COMPLETED))
    await store.create(record("o2", state=UnitState.FAILED))
    await store.create(record("c1", pipeline="customers", state=UnitState.COMPLETED))
    view = await snapshot(store, backend="embedded", query=StatusQuery(pipeline="customers"))
    assert view["pipeline_filter"] == "customers"
    assert {k: c["count"] for k, c in view["counts"].items()} == {
        "IN_PROGRESS": 0,
        "COMPLETED": 1,
        "FAILED": 0,
    }
    assert [u["key"] for u in view["units"]] == ["c1"]
    failed = await snapshot(
        store, backend="embedded", query=StatusQuery(UnitState.FAILED, "orders")
    )
    assert [u["key"] for u in failed["units"]] == ["o2"]


async def test_a_time_narrows_counts_as_it_narrows_units() -> None:
    store = MemoryLedgerStore()
    old = datetime(2026, 11, 1, tzinfo=UTC)
    await store.create(record("old", state=UnitState.FAILED, updated_at=old))
    await store.create(record("new", state=UnitState.COMPLETED, updated_at=old + timedelta(days=2)))
    since = old + timedelta(days=1)
    view = await snapshot(store, backend="embedded", query=StatusQuery(since=since))
    assert [u["key"] for u in view["units"]] == ["new"]
    assert {k: c["count"] for k, c in view["counts"].items()} == {
        "IN_PROGRESS": 0,
        "COMPLETED": 1,
        "FAILED": 0,
    }


async def test_links_keep_the_pipeline_and_set_the_state() -> None:
    view = await snapshot(MemoryLedgerStore(), backend="embedded", query=StatusQuery())
    assert filter_link(view, None) == "?"
    assert filter_link(view, "FAILED") == "?state=FAILED"
    assert filter_link(view, None, page="status.json") == "status.json"
    narrowed = view | {"pipeline_filter": "a&b c"}
    assert filter_link(narrowed, "FAILED") == "?state=FAILED&pipeline=a%26b+c"
    assert filter_link(narrowed, None, all_pipelines=True) == "?"
    assert filter_link(narrowed, None, page="status.json") == "status.json?pipeline=a%26b+c"
