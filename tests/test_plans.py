"""service/plans.py: what would run, the same for the ingestor and for every dry run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.models import (
    EventMeta,
    Ignored,
    ObjectFinalized,
    ObjectInfo,
    ObjectRef,
    SweepRequested,
    UnitKey,
)
from service.pipeline.definition import PipelineSet
from service.plans import Verdict, plan, recent, swept_objects, unit_key
from service.settings import Settings
from service.wiring import load_config

META = EventMeta(event_id="e-1", event_type="t", source="s", shape="test")


@pytest.fixture
def pipelines(embedded_settings: Settings) -> PipelineSet:
    return load_config(embedded_settings)


def finalized(name: str, generation: int | None = 7) -> ObjectFinalized:
    return ObjectFinalized(META, ObjectInfo(ObjectRef("landing", name, generation), size=10))


def test_an_object_plans_one_unit_per_matching_pipeline(pipelines: PipelineSet) -> None:
    found = plan(pipelines, finalized("orders/2026-11-20.csv"))
    assert found.verdict is Verdict.RUN
    assert found.units == (UnitKey("orders", "landing", "orders/2026-11-20.csv", 7),)
    assert found.reason == "orders:gs://landing/orders/2026-11-20.csv#7"


def test_what_is_ignored_says_why(pipelines: PipelineSet) -> None:
    assert plan(pipelines, finalized("elsewhere/a.csv")).reason == (
        "no pipeline matches gs://landing/elsewhere/a.csv"
    )
    assert plan(pipelines, finalized("orders/a.csv", None)).verdict is Verdict.IGNORE
    unknown = plan(pipelines, SweepRequested(META, "nope"))
    assert (unknown.verdict, unknown.reason) == (Verdict.IGNORE, "unknown pipeline nope")
    assert plan(pipelines, Ignored(META, "a deletion")).reason == "a deletion"


def test_a_sweep_plans_its_source(pipelines: PipelineSet) -> None:
    found = plan(pipelines, SweepRequested(META, "orders"))
    orders = pipelines.get("orders")
    assert orders is not None
    assert found.verdict is Verdict.SWEEP
    assert found.where == f"gs://landing/{orders.prefix_for(None)}"
    narrowed = plan(pipelines, SweepRequested(META, "orders", prefix="orders/2026-11-2"))
    assert narrowed.where == "gs://landing/orders/2026-11-2"


def test_a_sweep_runs_only_matching_generations(pipelines: PipelineSet) -> None:
    orders = pipelines.get("orders")
    assert orders is not None
    listed = [
        ObjectInfo(ObjectRef("landing", "orders/2026-11-20.csv", 1), size=10),
        ObjectInfo(ObjectRef("landing", "orders/2026-11-21.csv", None), size=10),
        ObjectInfo(ObjectRef("landing", "orders/notes.txt", 1), size=10),
    ]
    sweep = SweepRequested(META, "orders")
    found = swept_objects(orders, sweep, listed, datetime.now(UTC))
    assert [o.ref.name for o in found] == ["orders/2026-11-20.csv"]
    with pytest.raises(ValueError, match="no generation"):
        unit_key(orders, ObjectRef("landing", "orders/x.csv"))


def test_recent_keeps_objects_inside_the_lookback_window() -> None:
    now = datetime.now(UTC)
    ages = {"new": now, "edge": now - timedelta(days=2), "old": now - timedelta(days=4)}
    objects = [ObjectInfo(ObjectRef("b", n, 1), 1, updated=t) for n, t in ages.items()]
    objects.append(ObjectInfo(ObjectRef("b", "unknown", 1), 1))
    assert [o.ref.name for o in recent(objects, 3, now)] == ["new", "edge", "unknown"]


def test_only_an_undated_sweep_is_bounded_by_the_lookback(pipelines: PipelineSet) -> None:
    orders = pipelines.get("orders")
    assert orders is not None
    now = datetime.now(UTC)
    old = [
        ObjectInfo(
            ObjectRef("landing", "orders/2026-01-01.csv", 1), 1, updated=now - timedelta(days=90)
        )
    ]
    assert swept_objects(orders, SweepRequested(META, "orders"), old, now) == []
    dated = SweepRequested(META, "orders", date="2026-01-01")
    assert swept_objects(orders, dated, old, now) == old
