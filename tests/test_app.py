from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from quart.typing import TestAppProtocol as RunningApp

from service.adapters.local.duckdb_warehouse import DuckDbWarehouse
from service.app import create_app
from service.recording import load_requests
from service.settings import Settings, replace_settings
from tests.conftest import EXAMPLES, seed_examples

ORDERS_EVENT = EXAMPLES / "events" / "orders_2026-11-20.json"


async def post(app: RunningApp, path: Path) -> tuple[int, dict[str, object]]:
    [request] = load_requests(path)
    response = await app.test_client().post("/", headers=request.headers, data=request.body)
    return response.status_code, await response.get_json()


@pytest.mark.parametrize("path", ["/health", "/healthz"])
async def test_health(embedded_app: RunningApp, path: str) -> None:
    response = await embedded_app.test_client().get(path)
    assert response.status_code == 200
    assert (await response.get_json()) == {"status": "ok"}


@pytest.mark.parametrize("path", ["/ready", "/readyz"])  # Cloud Run reaches only /ready
async def test_ready_checks_every_backend(embedded_app: RunningApp, path: str) -> None:
    response = await embedded_app.test_client().get(path)
    body = await response.get_json()
    assert response.status_code == 200
    assert body["checks"] == {"object_store": "ok", "warehouse": "ok", "ledger": "ok"}


async def test_storage_cloudevent_loads_the_csv(
    embedded_app: RunningApp, embedded_settings: Settings
) -> None:
    status, body = await post(embedded_app, ORDERS_EVENT)
    assert status == 200
    assert body["status"] == "loaded"
    assert body["rows_loaded"] == 5
    status, body = await post(embedded_app, ORDERS_EVENT)
    # Loaded by the first delivery: reported apart, never as loaded again.
    assert (status, body["status"], body["rows_loaded"]) == (200, "duplicate", 0)
    assert body["rows_already_loaded"] == 5


async def test_rows_land_once_in_the_warehouse(embedded_settings: Settings) -> None:
    seed_examples(embedded_settings)
    app = create_app(embedded_settings)
    async with app.test_app() as test_app:
        for _ in range(3):
            await post(test_app, ORDERS_EVENT)
    warehouse = DuckDbWarehouse(embedded_settings.data_dir / "warehouse.duckdb")
    try:
        assert await warehouse.count_rows("sales.orders") == 5
    finally:
        await warehouse.close()


async def test_bad_rows_are_quarantined(
    embedded_app: RunningApp, embedded_settings: Settings
) -> None:
    status, body = await post(embedded_app, EXAMPLES / "events" / "orders_2026-11-21.json")
    assert status == 200
    assert (body["rows_loaded"], body["rows_quarantined"]) == (6, 2)
    quarantine = embedded_settings.data_dir / "buckets" / "landing" / "_quarantine"
    [file] = list(quarantine.rglob("*.jsonl"))
    lines = [json.loads(line) for line in file.read_text().splitlines()]
    assert [line["row"] for line in lines] == [2, 5]
    assert "amount" in lines[0]["reason"]
    assert "customer_id" in lines[1]["reason"]


async def test_not_an_envelope_is_400(embedded_app: RunningApp) -> None:
    response = await embedded_app.test_client().post(
        "/", headers={"Content-Type": "application/json"}, data=b"{not json"
    )
    assert response.status_code == 400
    assert (await response.get_json())["status"] == "bad_request"


async def test_unsupported_media_type_is_415(embedded_app: RunningApp) -> None:
    response = await embedded_app.test_client().post(
        "/", headers={"Content-Type": "image/png"}, data=b"\x89PNG"
    )
    assert response.status_code == 415


async def test_body_over_the_limit_is_413(embedded_settings: Settings) -> None:
    app = create_app(replace_settings(embedded_settings, max_body_bytes=1000))
    async with app.test_app() as test_app:
        response = await test_app.test_client().post(
            "/", headers={"Content-Type": "application/json"}, data=b"x" * 5000
        )
    assert response.status_code == 413
    assert (await response.get_json())["status"] == "error"


async def test_object_matching_no_pipeline_is_acknowledged(
    embedded_app: RunningApp,
) -> None:
    [request] = load_requests(ORDERS_EVENT)
    body = json.loads(request.body)
    body["name"] = "elsewhere/file.csv"
    response = await embedded_app.test_client().post(
        "/", headers=request.headers, data=json.dumps(body).encode()
    )
    assert response.status_code == 200
    assert (await response.get_json())["status"] == "ignored"


async def test_recording_writes_a_replayable_file(embedded_settings: Settings) -> None:
    record_dir = embedded_settings.data_dir / "recorded"
    settings = replace_settings(embedded_settings, record_dir=record_dir)
    seed_examples(settings)
    app = create_app(settings)
    async with app.test_app() as test_app:
        status, _ = await post(test_app, ORDERS_EVENT)
        assert status == 200
        [recorded] = list(record_dir.glob("*.json"))
        status, body = await post(test_app, recorded)
    assert (status, body["status"]) == (200, "duplicate")


async def test_answers_are_quarts_json_sorted_with_its_dates(embedded_app: RunningApp) -> None:
    async with embedded_app.app.app_context():  # type: ignore[attr-defined]
        provider = embedded_app.app.json  # type: ignore[attr-defined]
        when = datetime(2026, 11, 22, 3, 4, 5, tzinfo=UTC)
        assert provider.dumps({"b": "é", "a": when}) == (
            '{"a":"Sun, 22 Nov 2026 03:04:05 GMT","b":"é"}'
        )
        # What orjson refuses (a lone surrogate) still answers, through the stdlib.
        assert json.loads(provider.dumps({"a": "\ud800"})) == {"a": "\ud800"}
        assert provider.loads(b'{"n": 1}') == {"n": 1}
