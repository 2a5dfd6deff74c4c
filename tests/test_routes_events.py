"""POST / and the HTTP status policy: statuses, small JSON answers, no echo, one log line."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from quart.typing import TestAppProtocol as RunningApp

from service.app import create_app
from service.errors import NotFoundError, TransientError
from service.ingest import Ingestor, Outcome, Status
from service.models import Event
from service.settings import Settings, replace_settings
from tests.events import FILES, load

MAX_ANSWER_BYTES = 512
SCHEDULER = {
    "message": {
        "data": base64.b64encode(json.dumps({"pipeline": "orders"}).encode()).decode(),
        "messageId": "route-test-1",
    },
    "subscription": "projects/p/subscriptions/s",
}


async def post(app: RunningApp, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    response = await app.test_client().post("/", headers=headers, data=body)
    return response.status_code, (await response.get_data(as_text=True))


def request_strings(headers: dict[str, str], body: bytes) -> set[str]:
    """Every distinctive string a request carries: header values, JSON leaves, decoded data."""
    found = {v for v in headers.values()}
    stack: list[Any] = []
    try:
        stack.append(json.loads(body))
    except ValueError:
        found.add(body.decode("utf-8", "replace"))
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            found.add(item)
            if item and len(item) % 4 == 0:
                try:
                    stack.append(json.loads(base64.b64decode(item, validate=True)))
                except ValueError:
                    pass
    return {s for s in found if len(s) >= 6}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
async def test_every_recorded_delivery_gets_its_status_and_a_small_json_answer(
    embedded_app: RunningApp, path: Path
) -> None:
    request, expect = load(path)
    status, text = await post(embedded_app, request.headers, request.body)
    # Decodable events match no pipeline here (bucket landing-prod, nothing to sweep): 200.
    assert status == expect.get("status", 200)
    answer = json.loads(text)
    assert isinstance(answer, dict)
    assert isinstance(answer["status"], str)
    assert len(text.encode()) <= MAX_ANSWER_BYTES
    echoed = {s for s in request_strings(request.headers, request.body) if s in text}
    assert not echoed, f"the answer repeats the request: {echoed}"


async def test_event_ids_are_logged_once_and_never_answered(
    embedded_app: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.routes.events")
    status, text = await post(
        embedded_app, {"Content-Type": "application/json"}, json.dumps(SCHEDULER).encode()
    )
    assert status == 200
    assert "route-test-1" not in text
    lines = [r for r in caplog.records if r.name == "service.routes.events"]
    assert len(lines) == 1
    assert getattr(lines[0], "event_id", None) == "route-test-1"
    assert "route-test-1" in lines[0].getMessage()


def swap_handler(app: RunningApp, handle: Any) -> None:
    ingestor: Ingestor = app.app.extensions["runtime"].ingestor  # type: ignore[attr-defined]
    ingestor.handle = handle  # type: ignore[method-assign]


@pytest.mark.parametrize(
    ("status", "http"),
    [
        (Status.LOADED, 200),
        (Status.DUPLICATE, 200),
        (Status.IGNORED, 200),
        (Status.FAILED, 200),
        (Status.BUSY, 429),
        (Status.TRANSIENT, 503),
    ],
)
async def test_each_outcome_has_its_http_status_and_never_202(
    embedded_app: RunningApp, status: Status, http: int
) -> None:
    async def handle(event: Event, *, force: bool = False) -> Outcome:
        return Outcome(status, event.meta.event_id, "gs://secret-bucket/secret-object.csv")

    swap_handler(embedded_app, handle)
    code, text = await post(
        embedded_app, {"Content-Type": "application/json"}, json.dumps(SCHEDULER).encode()
    )
    assert code == http
    assert json.loads(text)["status"] == status.value
    if status in (Status.TRANSIENT, Status.FAILED):
        assert "secret" not in text  # error texts may name objects: they go to the log only


async def test_a_transient_error_is_503_without_its_text(embedded_app: RunningApp) -> None:
    async def handle(event: Event, *, force: bool = False) -> Outcome:
        raise TransientError("firestore at 10.0.0.7:8080 timed out for secret-object.csv")

    swap_handler(embedded_app, handle)
    code, text = await post(
        embedded_app, {"Content-Type": "application/json"}, json.dumps(SCHEDULER).encode()
    )
    assert code == 503
    assert json.loads(text) == {"status": "transient", "reason": "a backend is unavailable; retry later"}


async def test_a_permanent_error_is_acknowledged(embedded_app: RunningApp) -> None:
    async def handle(event: Event, *, force: bool = False) -> Outcome:
        raise NotFoundError("bucket secret-bucket does not exist")

    swap_handler(embedded_app, handle)
    code, text = await post(
        embedded_app, {"Content-Type": "application/json"}, json.dumps(SCHEDULER).encode()
    )
    assert (code, json.loads(text)["status"]) == (200, "failed")
    assert "secret" not in text


async def test_an_unexpected_error_is_a_json_500(embedded_app: RunningApp) -> None:
    async def handle(event: Event, *, force: bool = False) -> Outcome:
        raise RuntimeError("a bug")

    swap_handler(embedded_app, handle)
    code, text = await post(
        embedded_app, {"Content-Type": "application/json"}, json.dumps(SCHEDULER).encode()
    )
    assert code == 500
    assert json.loads(text) == {"status": "error", "reason": "Internal Server Error"}


@pytest.mark.parametrize(("method", "code"), [("GET", 405), ("PUT", 405)])
async def test_other_methods_get_json_too(embedded_app: RunningApp, method: str, code: int) -> None:
    response = await embedded_app.test_client().open("/", method=method)
    assert response.status_code == code
    assert (await response.get_json())["status"] == "error"


async def test_declared_length_over_the_limit_is_413_before_reading(
    embedded_settings: Settings,
) -> None:
    app = create_app(replace_settings(embedded_settings, max_body_bytes=1000))
    async with app.test_app() as test_app:
        response = await test_app.test_client().post(
            "/", headers={"Content-Type": "application/json"}, data=b"{" + b" " * 2000 + b"}"
        )
    assert response.status_code == 413
    assert (await response.get_json()) == {"status": "error", "reason": "Request Entity Too Large"}


async def test_recording_failure_never_fails_intake(
    embedded_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the recording folder should be")
    app = create_app(replace_settings(embedded_settings, record_dir=blocker))
    async with app.test_app() as test_app:
        code, _ = await post(
            test_app, {"Content-Type": "application/json"}, json.dumps(SCHEDULER).encode()
        )
    assert code == 200
    assert any("could not record" in r.getMessage() for r in caplog.records)
