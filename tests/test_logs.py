from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from quart.typing import TestAppProtocol as RunningApp

from service.app import create_app
from service.logs import (
    LABELS_KEY,
    SAMPLED_KEY,
    SOURCE_KEY,
    SPAN_KEY,
    TRACE_KEY,
    CloudLoggingFormatter,
    TextFormatter,
    Trace,
    bind_labels,
    bind_trace,
    log_context,
    parse_cloud_trace,
    parse_traceparent,
    trace_from_headers,
    use_json,
)
from service.recording import load_requests
from service.settings import Settings, replace_settings
from tests.conftest import EXAMPLES, seed_examples

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def record(message: str = "hello", level: int = logging.INFO, **extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord("service.test", level, __file__, 42, message, None, None, "fn")
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_traceparent_gives_trace_span_and_sampling() -> None:
    assert parse_traceparent(TRACEPARENT) == Trace(TRACE_ID, "00f067aa0ba902b7", True)
    assert parse_traceparent(f"00-{TRACE_ID}-00f067aa0ba902b7-00") == Trace(
        TRACE_ID, "00f067aa0ba902b7", False
    )


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"ff-{TRACE_ID}-00f067aa0ba902b7-01",  # version ff is invalid
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01",  # must be lowercase
    ],
)
def test_invalid_traceparent_is_ignored(value: str | None) -> None:
    assert parse_traceparent(value) is None


def test_cloud_trace_context_converts_the_decimal_span_to_hex() -> None:
    parsed = parse_cloud_trace("105445AA7843BC8BF206B12000100000/1;o=1")
    assert parsed == Trace("105445aa7843bc8bf206b12000100000", "0000000000000001", True)
    assert parse_cloud_trace("105445aa7843bc8bf206b12000100000") == Trace(
        "105445aa7843bc8bf206b12000100000", None, False
    )
    assert parse_cloud_trace("105445aa7843bc8bf206b12000100000/0;o=0") == Trace(
        "105445aa7843bc8bf206b12000100000", None, False
    )
    assert parse_cloud_trace("not-a-trace/1;o=1") is None


def test_traceparent_wins_over_the_cloud_header() -> None:
    cloud = "105445aa7843bc8bf206b12000100000/1;o=1"
    assert trace_from_headers(TRACEPARENT, cloud) == parse_traceparent(TRACEPARENT)
    assert trace_from_headers("garbage", cloud) == parse_cloud_trace(cloud)
    assert trace_from_headers(None, None) is None


def test_json_line_has_cloud_logging_fields() -> None:
    formatter = CloudLoggingFormatter(project="my-project")
    bind_trace(parse_traceparent(TRACEPARENT))
    try:
        with log_context(event_id="ev-1", unit="orders:gs://b/o#1"):
            line = formatter.format(record("loaded", logging.WARNING, pipeline="orders"))
    finally:
        bind_trace(None)
    entry = json.loads(line)
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "loaded"
    assert entry[TRACE_KEY] == f"projects/my-project/traces/{TRACE_ID}"
    assert entry[SPAN_KEY] == "00f067aa0ba902b7"
    assert entry[SAMPLED_KEY] is True
    assert entry[LABELS_KEY] == {
        "event_id": "ev-1",
        "unit": "orders:gs://b/o#1",
        "pipeline": "orders",
    }
    assert entry[SOURCE_KEY] == {"file": __file__, "line": "42", "function": "fn"}


def test_no_trace_field_without_a_project_and_no_labels_outside_a_context() -> None:
    bind_trace(parse_traceparent(TRACEPARENT))
    try:
        entry = json.loads(CloudLoggingFormatter(project=None).format(record()))
    finally:
        bind_trace(None)
    assert TRACE_KEY not in entry
    assert LABELS_KEY not in entry


def test_extra_fields_win_over_the_context_and_the_context_ends_with_the_block() -> None:
    formatter = CloudLoggingFormatter()
    with log_context(unit="a", outcome="loaded"):
        inside = json.loads(formatter.format(record(outcome="failed")))
    after = json.loads(formatter.format(record()))
    assert inside[LABELS_KEY] == {"unit": "a", "outcome": "failed"}
    assert LABELS_KEY not in after


def test_exceptions_go_to_stack_trace() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = record("failed", logging.ERROR)
        rec.exc_info = sys.exc_info()
    entry = json.loads(CloudLoggingFormatter().format(rec))
    assert entry["severity"] == "ERROR"
    assert "ValueError: boom" in entry["stack_trace"]


def test_text_line_is_readable_with_labels() -> None:
    with log_context(event_id="ev-1", pipeline="orders"):
        line = TextFormatter().format(record("unit done"))
    assert line.endswith("INFO    service.test: unit done [event_id=ev-1 pipeline=orders]")
    assert not line.startswith("{")


def test_json_when_not_a_terminal_or_asked(embedded_settings: Settings) -> None:
    auto = replace_settings(embedded_settings, log_format="auto")
    assert use_json(auto, stream_is_tty=False)
    assert not use_json(auto, stream_is_tty=True)
    assert use_json(replace_settings(embedded_settings, log_format="json"), stream_is_tty=True)
    assert not use_json(replace_settings(embedded_settings, log_format="text"), False)


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Every line the service logs during the test, formatted as on Cloud Run."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(CloudLoggingFormatter(project="my-project"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def entries(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_one_line_per_request_and_per_unit_with_trace_and_labels(
    embedded_settings: Settings, json_lines: io.StringIO
) -> None:
    settings = replace_settings(embedded_settings, project="my-project")
    seed_examples(settings)
    [request] = load_requests(EXAMPLES / "events" / "orders_2026-11-20.json")
    app = create_app(settings)
    async with app.test_app() as running:
        response = await post(running, request.headers, request.body, TRACEPARENT)
        assert response == 200
    lines = entries(json_lines)
    units = [e for e in lines if e["logger"] == "service.ingest"]
    requests = [e for e in lines if e["logger"] == "service.routes.events"]
    assert len(units) == 1
    assert len(requests) == 1
    [unit] = units
    assert unit["severity"] == "INFO"
    assert unit[LABELS_KEY] == {
        "event_id": "demo-0002",
        "unit": "orders:gs://landing/orders/2026-11-20.csv#1",
        "pipeline": "orders",
        "outcome": "loaded",
    }
    assert "5 rows loaded" in unit["message"]
    [line] = requests
    assert line[LABELS_KEY]["event_id"] == "demo-0002"
    assert line[LABELS_KEY]["outcome"] == "loaded"
    for entry in (unit, line):
        assert entry[TRACE_KEY] == f"projects/my-project/traces/{TRACE_ID}"


async def test_a_request_without_trace_headers_logs_no_trace(
    embedded_settings: Settings, json_lines: io.StringIO
) -> None:
    settings = replace_settings(embedded_settings, project="my-project")
    app = create_app(settings)
    async with app.test_app() as running:
        await post(running, {"Content-Type": "application/json"}, b"{not json", None)
        # A later request with a trace must not leak it backwards or forwards.
        await post(running, {"Content-Type": "application/json"}, b"{not json", TRACEPARENT)
        await post(running, {"Content-Type": "application/json"}, b"{not json", None)
    refused = [e for e in entries(json_lines) if e["message"].startswith("refused a request")]
    assert [TRACE_KEY in e for e in refused] == [False, True, False]


async def post(
    app: RunningApp, headers: dict[str, str], body: bytes, traceparent: str | None
) -> int:
    sent = dict(headers)
    if traceparent:
        sent["traceparent"] = traceparent
    response = await app.test_client().post("/", headers=sent, data=body)
    return response.status_code


def test_bind_labels_adds_to_the_current_context() -> None:
    import contextvars

    def inside() -> dict[str, Any]:
        bind_labels(event_id="ev-9", unit=None)
        return dict(json.loads(CloudLoggingFormatter().format(record()))[LABELS_KEY])

    assert contextvars.copy_context().run(inside) == {"event_id": "ev-9"}
    assert LABELS_KEY not in json.loads(CloudLoggingFormatter().format(record()))
