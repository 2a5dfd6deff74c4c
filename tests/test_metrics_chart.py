"""The status page's chart: bars stacked per minute, scaled to the busiest minute."""

from __future__ import annotations

from datetime import UTC, datetime

from service.metrics import Minute
from service.metrics_chart import BAR, HEIGHT, chart

AT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_bars_stack_from_the_bottom_and_the_busiest_minute_fills_the_height() -> None:
    drawn = chart([Minute(AT, 0, 0, 0), Minute(AT, 3, 1, 0), Minute(AT, 2, 0, 0)])
    assert (drawn.peak, drawn.totals) == (4, {"loaded": 5, "failed": 1, "retry": 0})
    loaded, failed, second = drawn.bars
    assert (loaded.x, loaded.kind, loaded.y + loaded.height) == (BAR, "loaded", HEIGHT)
    assert (failed.kind, failed.y, failed.y + failed.height) == ("failed", 0, loaded.y)
    assert (second.x, second.height) == (2 * BAR, HEIGHT / 2)
    assert loaded.title == "12:00 UTC: 3 loaded"


def test_an_idle_hour_draws_no_bar() -> None:
    assert chart([Minute(AT, 0, 0, 0)] * 60).bars == ()
