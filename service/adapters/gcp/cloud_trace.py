"""Spans to Cloud Trace: OpenTelemetry's exporter (opentelemetry-exporter-gcp-trace).

The exporter sends batches with the Trace API's BatchWriteSpans: cloudtrace.traces.patch
(roles/cloudtrace.agent for the runner). Writes are limited to 4,800 calls per minute per
project and a trace to 1,000 spans and 32 attributes a span (trace/docs/quotas); the SDK's batch
processor sends up to 512 spans a call every few seconds, far under them, and a unit makes a
handful of spans. A failed export is logged by the SDK and those spans are dropped: traces are
samples, never the record of what was loaded.
"""

from __future__ import annotations

from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter
from opentelemetry.sdk.trace.export import SpanExporter

from service.settings import Settings


def cloud_trace_exporter(settings: Settings) -> SpanExporter:
    return CloudTraceSpanExporter(project_id=settings.project)
