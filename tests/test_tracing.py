"""Spans: one per unit under the request's trace, one per stage under it, linked from the logs.

One unit runs through the real embedded adapters with an in-memory span exporter; its log line
is read as the JSON Cloud Logging gets.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.logs import (
    SPAN_KEY,
    TRACE_KEY,
    CloudLoggingFormatter,
    bind_trace,
    parse_traceparent,
)
from service.models import EventMeta, ObjectFinalized, ObjectRef
from service.results import Status
from service.settings import Settings
from service.tracing import UNIT_SPAN, Tracing
from service.wiring import build_backends, build_ingestor, load_config, span_exporters
from tests.conftest import seed_examples

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
REQUEST_SPAN = "00f067aa0ba902b7"
ORDERS = ObjectRef("landing", "orders/2026-11-20.csv")
# The stages a CSV unit of the examples goes through (spooled: it has a transform).
STAGES = {"extract", "parse", "validate", "spool", "load", "quarantine"}


async def one_unit(
    settings: Settings, traceparent: str | None
) -> tuple[list[ReadableSpan], dict[str, Any]]:
    """Runs the examples' orders file as one unit under ``traceparent``: spans, log line."""
    seed_examples(settings)
    backends = build_backends(settings)
    exporter = InMemorySpanExporter()
    tracing = Tracing([exporter])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(CloudLoggingFormatter(project="my-project"))
    logger = logging.getLogger("service.ingest")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        service = build_ingestor(settings, backends, load_config(settings), spans=tracing)
        bind_trace(parse_traceparent(traceparent))
        info = await backends.store.stat(ORDERS)
        event = ObjectFinalized(EventMeta("e1", "t", "test"), info)
        assert (await service.handle(event)).status is Status.LOADED
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        bind_trace(None)
        tracing.close()  # flushes the batch
        await backends.close()
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    return list(exporter.get_finished_spans()), line


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    assert context is not None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


async def test_a_unit_has_a_span_per_stage_under_its_span_in_the_requests_trace(
    embedded_settings: Settings,
) -> None:
    spans, line = await one_unit(embedded_settings, f"00-{TRACE_ID}-{REQUEST_SPAN}-01")
    [unit] = [s for s in spans if s.name == UNIT_SPAN]
    trace_id, unit_span_id = hex_ids(unit)
    assert trace_id == TRACE_ID
    assert unit.parent is not None and f"{unit.parent.span_id:016x}" == REQUEST_SPAN
    assert unit.attributes is not None
    assert unit.attributes["ingest.unit"] == "orders:gs://landing/orders/2026-11-20.csv#1"
    stages = [s for s in spans if s.name != UNIT_SPAN]
    assert {s.name for s in stages} == STAGES
    for stage in stages:
        assert hex_ids(stage)[0] == TRACE_ID
        assert stage.parent is not None and f"{stage.parent.span_id:016x}" == unit_span_id
    # The unit's log line links to the unit's span in that trace.
    assert line[TRACE_KEY] == f"projects/my-project/traces/{TRACE_ID}"
    assert line[SPAN_KEY] == unit_span_id


async def test_a_unit_without_a_request_trace_starts_one_and_logs_it(
    embedded_settings: Settings,
) -> None:
    spans, line = await one_unit(embedded_settings, None)
    [unit] = [s for s in spans if s.name == UNIT_SPAN]
    trace_id, span_id = hex_ids(unit)
    assert unit.parent is None
    assert line[TRACE_KEY] == f"projects/my-project/traces/{trace_id}"
    assert line[SPAN_KEY] == span_id
    assert all(hex_ids(s)[0] == trace_id for s in spans)


async def test_an_unsampled_request_records_no_span_and_keeps_its_trace_in_the_logs(
    embedded_settings: Settings,
) -> None:
    spans, line = await one_unit(embedded_settings, f"00-{TRACE_ID}-{REQUEST_SPAN}-00")
    assert spans == []
    assert line[TRACE_KEY] == f"projects/my-project/traces/{TRACE_ID}"
    assert line[SPAN_KEY] == REQUEST_SPAN


def test_spans_go_to_cloud_trace_only_on_google_cloud(embedded_settings: Settings) -> None:
    assert span_exporters(embedded_settings) == []
    emulated = Settings(backend="gcp", project="p", bigquery_endpoint="http://127.0.0.1:1")
    assert span_exporters(emulated) == []
