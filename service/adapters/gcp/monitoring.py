"""Metrics to Cloud Monitoring: OpenTelemetry's exporter (opentelemetry-exporter-gcp-monitoring).

The exporter writes custom metrics under ``workload.googleapis.com/`` with
projects.timeSeries.create: monitoring.timeSeries.create (roles/monitoring.metricWriter for the
runner). Cloud Monitoring takes one point per time series every 5 seconds at most; exporting
once a minute keeps far under it. A failed export is logged by the SDK and the next one sends
the cumulative values again, so nothing is lost but resolution.
"""

from __future__ import annotations

from opentelemetry.exporter.cloud_monitoring import CloudMonitoringMetricsExporter
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader

from service.settings import Settings

# How often the metrics are sent.
EXPORT_INTERVAL_MILLIS = 60_000


def cloud_monitoring_reader(settings: Settings) -> MetricReader:
    # add_unique_identifier: several instances write the same series; a label tells them apart.
    exporter = CloudMonitoringMetricsExporter(
        project_id=settings.project, add_unique_identifier=True
    )
    return PeriodicExportingMetricReader(exporter, export_interval_millis=EXPORT_INTERVAL_MILLIS)
