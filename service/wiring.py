"""Assembly: the only module that picks adapters, from the settings.

Longer than 300 lines: every choice of adapter (backends, fan-out, exporters, outcome topics,
the trial's ports) and the start-up checks that go with them are here, so that no other module
names an adapter (tests/test_architecture.py checks it).
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from service import allocator
from service.errors import ConfigError
from service.fanout import FanOut
from service.ingest import Ingestor
from service.ledger import Ledger
from service.measures import NO_SPANS, UnitMetrics, UnitSpans
from service.models import ObjectRef
from service.outcomes import DiscardOutcomes
from service.pipeline.csv_stream import reserve_io_threads
from service.pipeline.definition import PipelineSet
from service.pipeline.pipelines_file import load_pipelines
from service.pipeline.runner import Runner
from service.ports import (
    IdempotencyStore,
    MessageSink,
    MessageSource,
    ObjectStore,
    OutcomePublisher,
    StreamWriter,
    SweepCursors,
    Warehouse,
    WorkPublisher,
)
from service.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace.export import SpanExporter

    from service.adapters.local.dry import DryWarehouse, OneFileStore


@dataclass(frozen=True)
class Backends:
    store: ObjectStore
    warehouse: Warehouse
    ledger_store: IdempotencyStore
    outcomes: OutcomePublisher = field(default_factory=DiscardOutcomes)
    streams: StreamWriter | None = None  # the Write API, for pipelines with load = "stream"
    # A sweep's fan-out: where units are published and where its cursor is kept (None: a
    # sweep runs its units in the request that asked for it).
    work: WorkPublisher | None = None
    cursors: SweepCursors | None = None

    async def close(self) -> None:
        for backend in (self.streams, self.work, self.cursors, self.outcomes, self.store):
            if backend is not None:
                await backend.close()
        for other in (self.warehouse, self.ledger_store):
            await other.close()


def owner_id() -> str:
    """This process, as named in ledger leases."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def build_backends(settings: Settings) -> Backends:
    backends = replace(_real_backends(settings), outcomes=outcome_publisher(settings))
    work, cursors = fanout_backends(settings)
    backends = replace(backends, work=work, cursors=cursors)
    if settings.fault_rate <= 0:
        return backends
    from service.adapters.faults import (
        FaultInjector,
        FaultyObjectStore,
        FaultyStreamWriter,
        faulty_warehouse,
    )

    faults = FaultInjector(settings.fault_rate)
    streams = backends.streams
    return replace(
        backends,
        store=FaultyObjectStore(backends.store, faults),
        warehouse=faulty_warehouse(backends.warehouse, faults),
        streams=FaultyStreamWriter(streams, faults) if streams is not None else None,
    )


def _real_backends(settings: Settings) -> Backends:
    if settings.backend == "gcp":
        from service.adapters.gcp import build as build_gcp

        store, warehouse, ledger_store, streams = build_gcp(settings)
        return Backends(store, warehouse, ledger_store, streams=streams)
    from service.adapters.local.directory_store import DirectoryObjectStore
    from service.adapters.local.duckdb_arrow import DuckDbArrowWriter
    from service.adapters.local.duckdb_warehouse import DuckDbWarehouse
    from service.adapters.local.sqlite_ledger import SqliteLedgerStore

    root = check_data_dir(settings)
    duck = DuckDbWarehouse(root / "warehouse.duckdb")
    return Backends(
        DirectoryObjectStore(root / "buckets"),
        duck,
        SqliteLedgerStore(root / "ledger.sqlite3"),
        streams=DuckDbArrowWriter(duck),
    )


def preflight(settings: Settings) -> None:
    """What the backends need before any is opened: a data folder, or Google credentials.

    A server checks this before it starts serving, so a missing piece is one line, not a
    failed start-up's traceback.
    """
    if settings.backend == "embedded":
        check_data_dir(settings)
        return
    from service.adapters.gcp.credentials import find_credentials

    find_credentials(settings)


def require_data_dir(settings: Settings) -> Path:
    """The embedded backends' folder, which must exist: commands that only read or run what is
    there say where they looked instead of making an empty folder in the wrong place."""
    root = settings.data_dir
    if not root.is_dir():
        raise ConfigError(
            f"no data folder at {root.absolute()} (INGEST_DATA_DIR={root}): run this where the"
            " data is (where `ingest serve` or `ingest upload` ran), or set INGEST_DATA_DIR"
        )
    return check_data_dir(settings)


def find_credentials(settings: Settings) -> str:
    """Which Google credentials the gcp backend would use (one line), or why there are none."""
    from service.adapters.gcp.credentials import find_credentials as found

    return found(settings)


def check_data_dir(settings: Settings) -> Path:
    """The embedded backends' folder, made if missing; ConfigError when it cannot be written."""
    root = settings.data_dir
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):  # a real write: permission bits do not bind root
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"INGEST_DATA_DIR={root}: not a writable folder ({reason})") from exc
    return root


def build_ingestor(
    settings: Settings,
    backends: Backends,
    pipelines: PipelineSet,
    metrics: UnitMetrics | None = None,
    spans: UnitSpans = NO_SPANS,
) -> Ingestor:
    ledger = Ledger(backends.ledger_store, owner=owner_id(), lease_seconds=settings.lease_seconds)
    allocator.keep_large_blocks()  # the runner's blocks and requests: allocator.py says why
    reserve_io_threads(settings.max_units_in_flight)  # csv_stream.py says why
    runner = Runner(
        backends.store,
        backends.warehouse,
        chunk_bytes=settings.chunk_bytes,
        buffer_bytes=settings.max_buffered_bytes,
        spool_bytes=settings.spool_max_bytes,
        read_seconds=settings.unit_read_seconds,
        streams=backends.streams,
        spans=spans,
    )
    fanout = None
    if backends.work is not None and backends.cursors is not None:
        fanout = FanOut(
            pipelines,
            backends.store,
            backends.ledger_store,
            backends.work,
            backends.cursors,
            page_size=settings.sweep_page_size,
        )
    ingestor = Ingestor(
        pipelines,
        backends.store,
        ledger,
        runner,
        renew_every_seconds=settings.renew_every_seconds,
        stall_seconds=settings.stall_seconds,
        max_units_in_flight=settings.max_units_in_flight,
        outcomes=backends.outcomes,
        fanout=fanout,
        metrics=metrics,
    )
    bind = getattr(backends.work, "bind", None)
    if bind is not None:  # the in-process queue delivers to this very ingestor
        bind(ingestor.handle)
    return ingestor


def fanout_backends(settings: Settings) -> tuple[WorkPublisher | None, SweepCursors | None]:
    """The work topic and cursors: the service's own topic on gcp (when set), else a queue in
    this process (embedded); none on gcp without a topic (sweeps then run in-request)."""
    if settings.backend == "gcp":
        if not settings.work_topic:
            return None, None
        from service.adapters.gcp.sweep_cursors import FirestoreSweepCursors
        from service.adapters.gcp.work_topic import PubSubWorkPublisher

        return (
            PubSubWorkPublisher.from_settings(settings, settings.work_topic),
            FirestoreSweepCursors.from_settings(settings),
        )
    from service.adapters.local.sweep_cursors import SqliteSweepCursors
    from service.work_queue import InProcessWork

    return (
        InProcessWork(settings.max_units_in_flight),
        SqliteSweepCursors(settings.data_dir / "sweeps.sqlite3"),
    )


def _exported(settings: Settings, choice: str, service: str) -> bool:
    """Telemetry goes to Google's ``service`` when asked, or by default on gcp off emulators."""
    return choice == service or (choice == "auto" and _on_google_cloud(settings))


def _on_google_cloud(settings: Settings) -> bool:
    """The gcp backend on Google's own APIs (not on any emulator)."""
    on_emulators = any(
        (
            settings.firestore_emulator_host,
            settings.storage_emulator_host,
            settings.pubsub_emulator_host,
            settings.bigquery_endpoint,
        )
    )
    return settings.backend == "gcp" and not on_emulators


def metric_exporters(settings: Settings) -> list[MetricReader]:
    """Cloud Monitoring when asked, or by default on gcp off the emulators; /metrics always."""
    if not _exported(settings, settings.metrics_export, "cloud-monitoring"):
        return []
    from service.adapters.gcp.monitoring import cloud_monitoring_reader

    return [cloud_monitoring_reader(settings)]


def span_exporters(settings: Settings) -> list[SpanExporter]:
    """Cloud Trace when asked, or by default on gcp off the emulators; else spans go nowhere."""
    if not _exported(settings, settings.trace_export, "cloud-trace"):
        return []
    from service.adapters.gcp.cloud_trace import cloud_trace_exporter

    return [cloud_trace_exporter(settings)]


def outcome_publisher(settings: Settings) -> OutcomePublisher:
    """A topic when one is set; else a JSONL file (embedded) or nowhere (gcp)."""
    if settings.outcome_topic:
        from service.adapters.gcp.pubsub import PubSubOutcomePublisher

        return PubSubOutcomePublisher.from_settings(settings, settings.outcome_topic)
    if settings.backend == "embedded":
        from service.adapters.local.outcome_file import JsonlOutcomeFile

        return JsonlOutcomeFile(settings.data_dir / "outcomes.jsonl")
    return DiscardOutcomes()


def open_topic(settings: Settings, topic: str) -> MessageSink:
    """A Pub/Sub topic, whatever the backend: replay publishes recorded events to it."""
    from service.adapters.gcp.pubsub import PubSubTopic

    return PubSubTopic.from_settings(settings, topic)


def open_subscription(settings: Settings, subscription: str) -> MessageSource:
    """A Pub/Sub pull subscription, whatever the backend (dead-letter re-drive)."""
    from service.adapters.gcp.pubsub import PubSubSubscription

    return PubSubSubscription.from_settings(settings, subscription)


# Where a source checkout keeps the example pipelines: the hint when none is found.
EXAMPLE_PIPELINES = Path("examples") / "pipelines.toml"


def trial_ports(path: Path, ref: ObjectRef, keep_rows: int) -> tuple[OneFileStore, DryWarehouse]:
    """``ingest try``'s ports: the local file as the one object, a warehouse that loads nothing."""
    from service.adapters.local.dry import DryWarehouse, OneFileStore

    return OneFileStore(path, ref), DryWarehouse(keep_rows)


def load_config(settings: Settings) -> PipelineSet:
    path = settings.pipelines_file
    if not path.exists():
        hint = (
            f"; here that may be INGEST_PIPELINES={EXAMPLE_PIPELINES} (what scripts/demo uses)"
            if EXAMPLE_PIPELINES.is_file()
            else ""
        )
        raise ConfigError(
            f"{path.absolute()}: pipelines file not found (set INGEST_PIPELINES to the"
            f" pipelines file{hint})"
        )
    return load_pipelines(path)
