"""POST / and the HTTP status policy: statuses, small JSON answers, no echo, one log line."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart.typing import TestAppProtocol as RunningApp

from service.app import create_app
from service.errors import NotFoundError, TransientError
from service.ingest import Ingestor
from service.models import Event, UnitState
from service.results import Outcome, Status
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


@pytest.fixture
async def intake_app(embedded_settings: Settings) -> AsyncIterator[RunningApp]:
    """The app on empty embedded backends: every event is decoded, none finds work."""
    app = create_app(embedded_settings)
    async with app.test_app() as test_app:
        yield test_app


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
        if isinstance(item, dict):  # values only: keys are field names, which reasons may use
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            found.add(item)
            if item and len(item) % 4 == 0:
                with suppress(ValueError):
                    stack.append(json.loads(base64.b64decode(item, validate=True)))
    return {s for s in found if len(s) >= 6}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
async def test_every_recorded_delivery_gets_its_status_and_a_small_json_answer(
    intake_app: RunningApp, path: Path
) -> None:
    request, expect = load(path)
    status, text = await post(intake_app, request.headers, request.body)
    # Decodable events find no work here (no pipeline for landing-prod, empty buckets): 200.
    assert status == expect.get("status", 200)
    answer = json.loads(text)
    assert isinstance(answer, dict)
    assert isinstance(answer["status"], str)
    assert len(text.encode()) <= MAX_ANSWER_BYTES
    echoed = {s for s in request_strings(request.headers, request.body) if s in text}
    assert not echoed, f"the answer repeats the request: {echoed}"


async def test_event_ids_are_logged_once_and_never_answered(
    intake_app: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.routes.events")
    status, text = await post(
        intake_app, {"Content-Type": "application/json"}, json.dumps(SCHEDULER).encode()
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
    intake_app: RunningApp, status: Status, http: int
) -> None:
    async def handle(event: Event, *, force: bool = False) -> Outcome:
        return Outcome(status, event.meta.event_id, "gs://secret-bucket/secret-object.csv")

    swap_handler(intake_app, handle)
    code, text = await post(
        intake_app, {"Content-Type": "application/json"}, json.dumps(SCHEDULER).encode()
    )
    assert code == http
    assert json.loads(text)["status"] == status.value
    if status in (Status.TRANSIENT, Status.FAILED):
        assert "secret" not in text  # error texts may name objects: they go to the log only


async def test_a_transient_error_is_503_without_its_text(intake_app: RunningApp) -> None:
    async def handle(event: Event, *, force: bool = False) -> Outcome:
        raise TransientError("firestore at 10.0.0.7:8080 timed out for secret-object.csv")

    swap_handler(intake_app, handle)
    code, text = await post(
        intake_app, {"Content-Type": "application/json"}, json.dumps(SCHEDULER).encode()
    )
    assert code == 503
    assert json.loads(text) == {
        "status": "transient",
        "reason": "a backend is unavailable; retry later",
    }


async def test_a_permanent_error_is_acknowledged(intake_app: RunningApp) -> None:
    async def handle(event: Event, *, force: bool = False) -> Outcome:
        raise NotFoundError("bucket secret-bucket does not exist")

    swap_handler(intake_app, handle)
    code, text = await post(
        intake_app, {"Content-Type": "application/json"}, json.dumps(SCHEDULER).encode()
    )
    assert (code, json.loads(text)["status"]) == (200, "failed")
    assert "secret" not in text


async def test_an_unexpected_error_is_a_json_500(intake_app: RunningApp) -> None:
    async def handle(event: Event, *, force: bool = False) -> Outcome:
        raise RuntimeError("a bug")

    swap_handler(intake_app, handle)
    code, text = await post(
        intake_app, {"Content-Type": "application/json"}, json.dumps(SCHEDULER).encode()
    )
    assert code == 500
    assert json.loads(text) == {"status": "error", "reason": "Internal Server Error"}


def storage_event(subject: str, data: dict[str, str]) -> tuple[dict[str, str], bytes]:
    """A binary-mode Eventarc storage event for the embedded bucket ``landing``."""
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.storage.object.v1.finalized",
        "ce-source": "//storage.googleapis.com/projects/_/buckets/landing",
        "ce-id": "poison-1",
        "ce-subject": subject,
    }
    return headers, json.dumps({"generation": "1", **data}).encode()


LONG_SEGMENT = "x" * 300 + ".csv"
# Object names that once gave 500 and a lease never released; with and without a size (a size
# in the event skips the look-up before the run, so the failure comes from the stream instead).
POISON_EVENTS = {
    "nul-in-subject": storage_event("objects/orders/a%00b.csv", {}),
    "nul-in-subject-sized": storage_event("objects/orders/a%00b.csv", {"size": "12"}),
    "nul-in-data": storage_event("objects/x", {"name": "orders/a\u0000b.csv"}),
    "long-segment": storage_event(f"objects/orders/{LONG_SEGMENT}", {}),
    "long-segment-sized": storage_event(f"objects/orders/{LONG_SEGMENT}", {"size": "12"}),
}


@pytest.mark.parametrize("case", sorted(POISON_EVENTS))
async def test_a_poison_name_is_a_recorded_failure_and_no_lease_is_left(
    embedded_app: RunningApp, case: str
) -> None:
    headers, body = POISON_EVENTS[case]
    for _ in range(2):  # the redelivery is answered from the ledger, never 429 or 5xx
        code, text = await post(embedded_app, headers, body)
        assert code == 200, text
        assert json.loads(text)["status"] in ("failed", "duplicate")
    ingestor: Ingestor = embedded_app.app.extensions["runtime"].ingestor  # type: ignore[attr-defined]
    records = [stored.record for stored in await ingestor.ledger.store.list()]
    assert [record.state for record in records] == [UnitState.FAILED]
    assert "object name" in (records[0].error or "") or "does not exist" in (records[0].error or "")


@pytest.mark.parametrize(
    "subject", ["objects/.well-known/acme-challenge/x", "objects/a%0Ab", "objects/caf%C3"]
)
async def test_a_name_cloud_storage_refuses_is_400(embedded_app: RunningApp, subject: str) -> None:
    code, text = await post(embedded_app, *storage_event(subject, {}))
    assert (code, json.loads(text)["status"]) == (400, "bad_request")


@pytest.mark.parametrize(("method", "code"), [("get", 405), ("put", 405)])
async def test_other_methods_get_json_too(intake_app: RunningApp, method: str, code: int) -> None:
    response = await getattr(intake_app.test_client(), method)("/")
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


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[int]:
    """The app under a real Hypercorn on a free loopback port (raw HTTP needs a real server)."""
    app = create_app(settings)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    try:
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
        yield port
    finally:
        stop.set()
        await task


async def raw_exchange(port: int, head: bytes, body_parts: list[bytes]) -> tuple[int, bytes]:
    """Send a hand-made request; read the first response (the server closes after it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for part in body_parts:
            writer.write(part)
            await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def chunked(*parts: bytes) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(p), p) for p in parts] + [b"0\r\n\r\n"]


HEAD = (
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n"
)


async def test_a_chunked_body_over_the_limit_is_413(embedded_settings: Settings) -> None:
    async with served(replace_settings(embedded_settings, max_body_bytes=1000)) as port:
        head = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
        status, body = await raw_exchange(port, head, chunked(b"[" + b" " * 799, b" " * 800))
    assert status == 413
    assert json.loads(body)["status"] == "error"


async def test_a_chunked_body_under_the_limit_is_read(embedded_settings: Settings) -> None:
    payload = json.dumps(SCHEDULER).encode()
    async with served(replace_settings(embedded_settings, max_body_bytes=1000)) as port:
        head = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
        status, body = await raw_exchange(port, head, chunked(payload[:10], payload[10:]))
    assert status == 200
    assert json.loads(body)["status"] == "published"  # the whole body was read: a sweep


async def test_a_huge_declared_length_is_refused_without_sending_the_body(
    embedded_settings: Settings,
) -> None:
    async with served(replace_settings(embedded_settings, max_body_bytes=1000)) as port:
        head = HEAD + b"Content-Length: 1000000000\r\n\r\n"
        status, _ = await raw_exchange(port, head, [])
    assert status == 413


async def test_a_short_declared_length_bounds_what_is_read(
    embedded_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The body is exactly Content-Length bytes; what follows is never read as this body."""
    async with served(replace_settings(embedded_settings, max_body_bytes=1000)) as port:
        head = HEAD + b"Content-Length: 2\r\n\r\n"
        status, _ = await raw_exchange(port, head, [b"{}" + b"x" * 5000])
    # Hypercorn answers the protocol error (the trailing bytes) itself, with an empty 400.
    assert status == 400
    refusals = [r.getMessage() for r in caplog.records if r.name == "service.routes.events"]
    # The app saw "{}" (a JSON object of no known envelope), not "{}xxx..." (not JSON).
    assert refusals == ["refused a request: request body is not a known event envelope"]
