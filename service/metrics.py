"""The service's own metrics, with OpenTelemetry: what a unit did, how long, how late, how busy.

One MeterProvider per app. Its readers: a Prometheus reader on a registry of its own (``GET
/metrics`` renders it) and, on Google Cloud, a periodic exporter to Cloud Monitoring (built in
adapters/gcp/monitoring.py). Instruments, each labelled by pipeline:

- ``ingest_units_total`` (and outcome), ``ingest_rows_loaded_total``,
  ``ingest_rows_quarantined_total``, ``ingest_retries_total`` (and reason: transient, busy, or
  refused when every unit slot was taken);
- ``ingest_unit_duration_seconds`` (and outcome), ``ingest_stage_duration_seconds`` (and stage),
  ``ingest_event_age_seconds``: how old the event was when its unit started (the lag);
- ``ingest_units_in_flight``, and ``ingest_buffered_bytes`` (the runner's byte budget in use).

A ring buffer of per-minute outcome counts (the last hour) feeds the status page's chart.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest

from service.models import EventMeta
from service.results import Status, UnitOutcome

# The chart's minutes, and how each outcome is drawn (anything else is not drawn).
HISTORY_MINUTES = 60
CHART_KIND = {
    Status.LOADED: "loaded",
    Status.DUPLICATE: "loaded",
    Status.FAILED: "failed",
    Status.BUSY: "retry",
    Status.TRANSIENT: "retry",
}
# Outcomes after which the platform delivers the event again: counted as retries.
RETRY_REASON = {Status.BUSY: "busy", Status.TRANSIENT: "transient"}
# Seconds histograms' bucket bounds: a unit takes from milliseconds to the ack deadline.
SECONDS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


@dataclass(frozen=True)
class Minute:
    """Units ended in one minute, by how the chart draws them."""

    at: datetime
    loaded: int
    failed: int
    retry: int


class History:
    """Per-minute counts of the last hour (a ring buffer: older minutes fall off)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._minutes: collections.deque[tuple[int, collections.Counter[str]]] = collections.deque(
            maxlen=HISTORY_MINUTES
        )

    def add(self, kind: str) -> None:
        minute = int(self.clock() // 60)
        if not self._minutes or self._minutes[-1][0] != minute:
            self._minutes.append((minute, collections.Counter()))
        self._minutes[-1][1][kind] += 1

    def last_hour(self) -> list[Minute]:
        """Every minute of the last hour, oldest first, empty minutes included."""
        now = int(self.clock() // 60)
        counts = dict(self._minutes)
        return [
            Minute(
                datetime.fromtimestamp(m * 60, UTC),
                counts.get(m, collections.Counter())["loaded"],
                counts.get(m, collections.Counter())["failed"],
                counts.get(m, collections.Counter())["retry"],
            )
            for m in range(now - HISTORY_MINUTES + 1, now + 1)
        ]


class _Measure:
    def __init__(self, metrics: Metrics, pipeline: str) -> None:
        self.metrics = metrics
        self.pipeline = pipeline
        self.started = time.perf_counter()

    def ended(self, outcome: UnitOutcome) -> None:
        self.metrics.unit_ended(self.pipeline, outcome, time.perf_counter() - self.started)


class Metrics:
    """The UnitMetrics the ingestor reports to, over an OpenTelemetry MeterProvider."""

    def __init__(
        self, exporters: Iterable[MetricReader] = (), *, buffered: Callable[[], int] | None = None
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        readers = [PrometheusMetricReader(registry=self.registry), *exporters]
        resource = Resource.create({"service.name": "ingest"})
        self.provider = MeterProvider(metric_readers=readers, resource=resource)
        self.history = History()
        self.buffered = buffered
        meter = self.provider.get_meter("service")
        self.units = meter.create_counter("ingest_units", "{unit}", "Units ended, by outcome")
        self.rows_loaded = meter.create_counter("ingest_rows_loaded", "{row}", "Rows loaded")
        self.rows_quarantined = meter.create_counter(
            "ingest_rows_quarantined", "{row}", "Rows quarantined"
        )
        self.retries = meter.create_counter(
            "ingest_retries", "{unit}", "Units the platform will deliver again, by reason"
        )
        self.in_flight = meter.create_up_down_counter(
            "ingest_units_in_flight", "{unit}", "Units running now"
        )
        bounds = {"explicit_bucket_boundaries_advisory": SECONDS_BUCKETS}
        self.unit_seconds = meter.create_histogram(
            "ingest_unit_duration_seconds", "s", "Time per unit, by outcome", **bounds
        )
        self.stage_seconds = meter.create_histogram(
            "ingest_stage_duration_seconds", "s", "Time per stage of a loaded unit", **bounds
        )
        self.event_age = meter.create_histogram(
            "ingest_event_age_seconds", "s", "Age of an event when its unit starts", **bounds
        )
        meter.create_observable_gauge(
            "ingest_buffered_bytes", [self._observe_buffered], "By", "Bytes buffered now"
        )

    def _observe_buffered(self, options: CallbackOptions) -> Iterable[Observation]:
        if self.buffered is not None:
            yield Observation(self.buffered())

    @contextlib.contextmanager
    def unit(self, pipeline: str, meta: EventMeta) -> Iterator[_Measure]:
        labels = {"pipeline": pipeline}
        if meta.time is not None:
            self.event_age.record(max(0.0, time.time() - meta.time.timestamp()), labels)
        self.in_flight.add(1, labels)
        try:
            yield _Measure(self, pipeline)
        finally:
            self.in_flight.add(-1, labels)

    def unit_ended(self, pipeline: str, outcome: UnitOutcome, seconds: float) -> None:
        labels = {"pipeline": pipeline}
        with_outcome = {**labels, "outcome": outcome.status.value}
        self.units.add(1, with_outcome)
        self.unit_seconds.record(seconds, with_outcome)
        self.rows_loaded.add(outcome.rows_loaded, labels)
        self.rows_quarantined.add(outcome.rows_quarantined, labels)
        for stage, stage_seconds in outcome.stage_seconds:
            self.stage_seconds.record(stage_seconds, {**labels, "stage": stage})
        if outcome.status in RETRY_REASON:
            self.retries.add(1, {**labels, "reason": RETRY_REASON[outcome.status]})
        kind = CHART_KIND.get(outcome.status)
        if kind is not None:
            self.history.add(kind)

    def refused(self, pipeline: str) -> None:
        self.retries.add(1, {"pipeline": pipeline, "reason": "refused"})
        self.history.add("retry")

    def prometheus_text(self) -> bytes:
        return generate_latest(self.registry)

    def close(self) -> None:
        self.provider.shutdown()
