"""service/replay/delivery.py: in-process replay goes through the app, as a platform push does."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from service.recording import RecordedRequest, load_requests
from service.replay.delivery import Sending, in_process
from service.settings import Settings, replace_settings
from tests.conftest import EXAMPLES, seed_examples

ORDERS_20 = EXAMPLES / "events" / "orders_2026-11-20.json"


async def test_in_process_records_and_logs_like_a_push(
    embedded_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seed_examples(embedded_settings)
    settings = replace_settings(embedded_settings, record_dir=tmp_path / "recorded")
    caplog.set_level(logging.INFO, logger="service.routes.events")
    [result] = await in_process(settings, load_requests(ORDERS_20), Sending(1), lambda: None)
    assert (result.http_status, result.status, result.body["event_id"]) == (
        200,
        "loaded",
        "demo-0002",
    )
    assert [p.name for p in (tmp_path / "recorded").iterdir()] == ["demo-0002.json"]
    [line] = [r for r in caplog.records if r.name == "service.routes.events"]
    assert "event demo-0002" in line.getMessage()


async def test_in_process_refusals_are_the_routes(embedded_settings: Settings) -> None:
    broken = RecordedRequest({"Content-Type": "application/json"}, b"{not json", "broken")
    odd = RecordedRequest({"Content-Type": "application/xml"}, b"<a/>", "odd")
    results = await in_process(embedded_settings, [broken, odd], Sending(2), lambda: None)
    assert [(r.http_status, r.status, r.body["event_id"]) for r in results] == [
        (400, "bad_request", None),
        (415, "unsupported_media_type", None),
    ]


async def test_in_process_force_is_the_operators_own_permission(
    embedded_settings: Settings,
) -> None:
    seed_examples(embedded_settings)
    requests = load_requests(ORDERS_20)
    assert not embedded_settings.allow_force
    await in_process(embedded_settings, requests, Sending(1), lambda: None)
    [again] = await in_process(embedded_settings, requests, Sending(1, force=True), lambda: None)
    assert (again.http_status, again.status) == (200, "loaded")
