"""Assembly: the only module that picks adapters, from the settings."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from service.errors import ConfigError
from service.ingest import Ingestor
from service.ledger import Ledger
from service.outcomes import DiscardOutcomes
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
    Warehouse,
)
from service.settings import Settings


@dataclass(frozen=True)
class Backends:
    store: ObjectStore
    warehouse: Warehouse
    ledger_store: IdempotencyStore
    outcomes: OutcomePublisher = field(default_factory=DiscardOutcomes)
    streams: StreamWriter | None = None  # the Write API, for pipelines with load = "stream"

    async def close(self) -> None:
        if self.streams is not None:
            await self.streams.close()
        for backend in (self.outcomes, self.store, self.warehouse, self.ledger_store):
            await backend.close()


def owner_id() -> str:
    """This process, as named in ledger leases."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def build_backends(settings: Settings) -> Backends:
    backends = replace(_real_backends(settings), outcomes=outcome_publisher(settings))
    if settings.fault_rate <= 0:
        return backends
    from service.adapters.faults import FaultInjector, FaultyObjectStore, faulty_warehouse

    faults = FaultInjector(settings.fault_rate)
    return replace(
        backends,
        store=FaultyObjectStore(backends.store, faults),
        warehouse=faulty_warehouse(backends.warehouse, faults),
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


def build_ingestor(settings: Settings, backends: Backends, pipelines: PipelineSet) -> Ingestor:
    ledger = Ledger(backends.ledger_store, owner=owner_id(), lease_seconds=settings.lease_seconds)
    runner = Runner(
        backends.store,
        backends.warehouse,
        chunk_bytes=settings.chunk_bytes,
        buffer_bytes=settings.max_buffered_bytes,
        spool_bytes=settings.spool_max_bytes,
        read_seconds=settings.unit_read_seconds,
        streams=backends.streams,
    )
    return Ingestor(
        pipelines,
        backends.store,
        ledger,
        runner,
        renew_every_seconds=settings.renew_every_seconds,
        stall_seconds=settings.stall_seconds,
        max_units_in_flight=settings.max_units_in_flight,
        outcomes=backends.outcomes,
    )


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
