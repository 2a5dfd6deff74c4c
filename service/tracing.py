"""The service's own traces, with OpenTelemetry: one span per unit, one per stage inside it.

One TracerProvider per app (like the MeterProvider in metrics.py; nothing global). The unit's
span continues the trace of the request that delivered its event (the trace the logs already
carry: service/logs.py), or starts one when the request had none; while the unit runs, the
logs carry the unit span's ids, so the unit's log line links to its span and its stages' spans.
The runner opens a span for each stage (``stage``), under the unit's span. Whether a trace is
recorded is the caller's choice (the sampled flag of the request's trace, ParentBased); an
unsampled request's unit keeps the request's trace id in its logs and records nothing.

Exporters: on Google Cloud, Cloud Trace (adapters/gcp/cloud_trace.py, chosen by the wiring);
locally none, so spans go nowhere (tests give an in-memory exporter).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from service.logs import Trace, bound_trace, current_trace

# Span names: the unit's span; each stage's span is named after its stage.
UNIT_SPAN = "unit"
# Span ids for a request's trace that came without one (Google's header may omit it).
_IDS = RandomIdGenerator()


class Tracing:
    """The UnitSpans the ingestor and the runner report to, over a TracerProvider."""

    def __init__(self, exporters: Iterable[SpanExporter] = ()) -> None:
        resource = Resource.create({"service.name": "ingest"})
        self.provider = TracerProvider(resource=resource)
        for exporter in exporters:
            # Batched, in the SDK's own thread: a unit never waits on an export.
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("service")

    @contextlib.contextmanager
    def unit(self, pipeline: str, unit: str) -> Iterator[None]:
        """Around one unit: its span, a child of the request's trace, and the logs on it."""
        request = current_trace()
        parent = trace.set_span_in_context(_remote(request)) if request else None
        attributes = {"ingest.pipeline": pipeline, "ingest.unit": unit}
        with self.tracer.start_as_current_span(
            UNIT_SPAN, context=parent, attributes=attributes
        ) as span:
            if not span.is_recording():  # not sampled: the logs keep the request's trace
                yield
                return
            ids = span.get_span_context()
            sampled = bool(ids.trace_flags & TraceFlags.SAMPLED)
            with bound_trace(Trace(f"{ids.trace_id:032x}", f"{ids.span_id:016x}", sampled)):
                yield

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Around one stage of the unit running in this context (a child of its span)."""
        with self.tracer.start_as_current_span(name):
            yield

    def close(self) -> None:
        self.provider.shutdown()  # flushes what is batched


def _remote(request: Trace) -> NonRecordingSpan:
    """The request's trace as a remote parent (no span id: a random one, as a root would)."""
    flags = TraceFlags(TraceFlags.SAMPLED if request.sampled else TraceFlags.DEFAULT)
    span_id = int(request.span_id, 16) if request.span_id else _IDS.generate_span_id()
    context = SpanContext(int(request.trace_id, 16), span_id, is_remote=True, trace_flags=flags)
    return NonRecordingSpan(context)
