"""The service's metrics: what each unit reports, as Prometheus text, and the hour's history."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from service.metrics import HISTORY_MINUTES, History, Metrics
from service.models import EventMeta
from service.results import Status, UnitOutcome

T0 = 1_800_000_000.0  # a minute boundary


def value(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` whose labels include ``labels``."""
    found = []
    for line in text.splitlines():
        sample = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if sample is None or sample.group(1) != name:
            continue
        has = dict(re.findall(r'(\w+)="([^"]*)"', sample.group(2) or ""))
        if labels.items() <= has.items():
            found.append(float(sample.group(3)))
    assert len(found) == 1, f"{name} {labels}: {found} in\n{text}"
    return found[0]


def test_each_unit_counts_by_outcome_with_rows_stages_lag_and_retries() -> None:
    metrics = Metrics(buffered=lambda: 4096)
    sent = EventMeta("e1", "t", "s", time=datetime.now(UTC) - timedelta(seconds=30))
    loaded = UnitOutcome("u1", Status.LOADED, 5, 2, stage_seconds=(("parse", 0.2),))
    with metrics.unit("orders", sent) as measure:
        measure.ended(loaded)
    with metrics.unit("orders", EventMeta("e2", "t", "s")) as measure:
        measure.ended(UnitOutcome("u2", Status.TRANSIENT, error="down"))
    metrics.refused("orders")
    text = metrics.prometheus_text().decode()
    metrics.close()
    assert value(text, "ingest_units_total", outcome="loaded", pipeline="orders") == 1
    assert value(text, "ingest_units_total", outcome="transient", pipeline="orders") == 1
    assert value(text, "ingest_rows_loaded_total", pipeline="orders") == 5
    assert value(text, "ingest_rows_quarantined_total", pipeline="orders") == 2
    assert value(text, "ingest_retries_total", pipeline="orders", reason="transient") == 1
    assert value(text, "ingest_retries_total", pipeline="orders", reason="refused") == 1
    assert value(text, "ingest_stage_duration_seconds_count", pipeline="orders", stage="parse") == 1
    # One event had a time (30 s old); the other none: only one age recorded.
    assert value(text, "ingest_event_age_seconds_count", pipeline="orders") == 1
    assert value(text, "ingest_event_age_seconds_bucket", le="10", pipeline="orders") == 0
    assert value(text, "ingest_event_age_seconds_bucket", le="60", pipeline="orders") == 1
    assert value(text, "ingest_units_in_flight", pipeline="orders") == 0
    assert value(text, "ingest_buffered_bytes") == 4096


def test_the_history_keeps_the_last_hour_minute_by_minute() -> None:
    now = [T0]
    history = History(clock=lambda: now[0])
    history.add("loaded")
    history.add("loaded")
    now[0] += 61
    history.add("failed")
    minutes = history.last_hour()
    assert len(minutes) == HISTORY_MINUTES
    assert [(m.loaded, m.failed) for m in minutes[-2:]] == [(2, 0), (0, 1)]
    now[0] += HISTORY_MINUTES * 60  # an hour later both have fallen off
    assert all((m.loaded, m.failed, m.retry) == (0, 0, 0) for m in history.last_hour())
