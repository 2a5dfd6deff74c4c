"""GET /metrics after real events, and the chart on the status page."""

from __future__ import annotations

from quart.typing import TestAppProtocol as RunningApp

from tests.test_metrics import value
from tests.test_routes_status import ingest_examples


async def test_metrics_count_the_units_the_app_ran(embedded_app: RunningApp) -> None:
    await ingest_examples(embedded_app)
    response = await embedded_app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = await response.get_data(as_text=True)
    assert value(text, "ingest_units_total", outcome="loaded", pipeline="orders") == 2
    assert "ingest_unit_duration_seconds_bucket" in text
    page = await (await embedded_app.test_client().get("/status")).get_data(as_text=True)
    assert 'id="chart"' in page and 'class="bar loaded"' in page
