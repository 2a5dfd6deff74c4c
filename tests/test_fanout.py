"""A sweep fanned out: pages listed, one work message per unfinished unit, a resumable cursor."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from service.adapters.memory import MemoryLedgerStore, MemorySweepCursors
from service.events import decode
from service.fanout import FanOut
from service.ledger import Claimed, Ledger
from service.models import (
    EventMeta,
    SweepRequested,
    UnitKey,
    UnitRequested,
    UnitResult,
)
from service.pipeline.definition import PipelineSet
from service.pipeline.pipelines_file import load_pipelines
from service.results import Status
from service.work_queue import push_envelope
from tests.conftest import EXAMPLES
from tests.listing_kit import PagedStore

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


class Published:
    """A work topic that keeps what it is given, decoded as the push that delivers it."""

    def __init__(self) -> None:
        self.units: list[UnitRequested] = []

    async def publish(self, data: bytes, attributes: Mapping[str, str]) -> None:
        event = decode({"content-type": "application/json"}, push_envelope(data, attributes))
        assert isinstance(event, UnitRequested)
        self.units.append(event)

    async def close(self) -> None:
        return None


@pytest.fixture
def pipelines() -> PipelineSet:
    return load_pipelines(EXAMPLES / "pipelines.toml")


def sweep(event_id: str = "s1") -> SweepRequested:
    meta = EventMeta(event_id, "pubsub.push", "projects/p/subscriptions/scheduler")
    return SweepRequested(meta, "orders", prefix="orders/")


def fan_out(
    pipelines: PipelineSet, store: PagedStore, ledger: MemoryLedgerStore, work: Published
) -> tuple[FanOut, MemorySweepCursors]:
    cursors = MemorySweepCursors()
    made = FanOut(pipelines, store, ledger, work, cursors, page_size=10, clock=lambda: NOW)
    return made, cursors


async def test_each_unfinished_unit_is_published_once_and_the_answer_counts_them(
    pipelines: PipelineSet,
) -> None:
    store, ledger_store, work = PagedStore(25), MemoryLedgerStore(), Published()
    ledger = Ledger(ledger_store, owner="elsewhere", lease_seconds=60)
    done = store.info(3).ref
    claim = await ledger.claim(UnitKey("orders", "landing", done.name, 1), "md5:md5-3")
    assert isinstance(claim, Claimed)
    await ledger.complete(claim.lease, UnitResult())
    fanout, _ = fan_out(pipelines, store, ledger_store, work)
    outcome = await fanout.sweep(sweep())
    assert (outcome.status, outcome.swept, outcome.published) == (Status.PUBLISHED, 25, 24)
    assert outcome.summary()["fanout"] == {"objects": 25, "published": 24}
    assert store.tokens == [None, "10", "20"]  # three pages of ten
    names = [u.object.ref.name for u in work.units]
    assert done.name not in names and len(set(names)) == 24
    assert all(u.pipeline == "orders" and u.object.md5_base64 for u in work.units)


async def test_a_sweep_cut_off_resumes_from_the_page_its_cursor_reached(
    pipelines: PipelineSet,
) -> None:
    store, work = PagedStore(25, fail_at=20), Published()
    fanout, cursors = fan_out(pipelines, store, MemoryLedgerStore(), work)
    first = await fanout.sweep(sweep())
    assert first.status is Status.TRANSIENT  # answered 503: the request is delivered again
    assert len(work.units) == 20
    again = await fanout.sweep(sweep())  # the same request (same message id), redelivered
    assert (again.status, again.published) == (Status.PUBLISHED, 25)
    assert store.tokens == [None, "10", "20", "20"]  # the first two pages were not listed again
    assert len(work.units) == 25
    [cursor] = cursors.cursors.values()
    assert (cursor.done, cursor.page_token, cursor.published) == (True, None, 25)
    third = await fanout.sweep(sweep("s2"))  # another sweep starts from the beginning
    assert third.published == 25 and store.tokens[-3:] == [None, "10", "20"]
