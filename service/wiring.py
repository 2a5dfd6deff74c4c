"""Assembly: the only module that picks adapters, from the settings."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from service.errors import ConfigError
from service.ingest import Ingestor
from service.ledger import Ledger
from service.models import ObjectRef
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
    Warehouse,
)
from service.settings import Settings

if TYPE_CHECKING:
    from service.adapters.local.dry import DryWarehouse, OneFileStore


@dataclass(frozen=True)
class Backends:
    store: ObjectStore
    warehouse: Warehouse
    ledger_store: IdempotencyStore
    outcomes: OutcomePublisher = field(default_factory=DiscardOutcomes)

    async def close(self) -> None:
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

        store, warehouse, ledger_store = build_gcp(settings)
        return Backends(store, warehouse, ledger_store)
    from service.adapters.local.directory_store import DirectoryObjectStore
    from service.adapters.local.duckdb_warehouse import DuckDbWarehouse
    from service.adapters.local.sqlite_ledger import SqliteLedgerStore

    root = check_data_dir(settings)
    return Backends(
        DirectoryObjectStore(root / "buckets"),
        DuckDbWarehouse(root / "warehouse.duckdb"),
        SqliteLedgerStore(root / "ledger.sqlite3"),
    )


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


def trial_ports(path: Path, ref: ObjectRef, keep_rows: int) -> tuple[OneFileStore, DryWarehouse]:
    """``ingest try``'s ports: the local file as the one object, a warehouse that loads nothing."""
    from service.adapters.local.dry import DryWarehouse, OneFileStore

    return OneFileStore(path, ref), DryWarehouse(keep_rows)


def load_config(settings: Settings) -> PipelineSet:
    return load_pipelines(settings.pipelines_file)
