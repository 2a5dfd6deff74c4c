"""Assembly: the only module that picks adapters, from the settings."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, replace

from service.ingest import Ingestor
from service.ledger import Ledger
from service.pipeline.config import PipelineSet, load_pipelines
from service.pipeline.runner import Runner
from service.ports import IdempotencyStore, ObjectStore, Warehouse
from service.settings import Settings


@dataclass(frozen=True)
class Backends:
    store: ObjectStore
    warehouse: Warehouse
    ledger_store: IdempotencyStore

    async def close(self) -> None:
        for backend in (self.store, self.warehouse, self.ledger_store):
            await backend.close()


def owner_id() -> str:
    """This process, as named in ledger leases."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def build_backends(settings: Settings) -> Backends:
    backends = _real_backends(settings)
    if settings.fault_rate <= 0:
        return backends
    from service.adapters.faults import FaultInjector, FaultyObjectStore, FaultyWarehouse

    faults = FaultInjector(settings.fault_rate)
    return replace(
        backends,
        store=FaultyObjectStore(backends.store, faults),
        warehouse=FaultyWarehouse(backends.warehouse, faults),
    )


def _real_backends(settings: Settings) -> Backends:
    if settings.backend == "gcp":
        from service.adapters.gcp import build as build_gcp

        store, warehouse, ledger_store = build_gcp(settings)
        return Backends(store, warehouse, ledger_store)
    from service.adapters.local.directory_store import DirectoryObjectStore
    from service.adapters.local.duckdb_warehouse import DuckDbWarehouse
    from service.adapters.local.sqlite_ledger import SqliteLedgerStore

    root = settings.data_dir
    return Backends(
        DirectoryObjectStore(root / "buckets"),
        DuckDbWarehouse(root / "warehouse.duckdb"),
        SqliteLedgerStore(root / "ledger.sqlite3"),
    )


def build_ingestor(settings: Settings, backends: Backends, pipelines: PipelineSet) -> Ingestor:
    ledger = Ledger(backends.ledger_store, owner=owner_id(), lease_seconds=settings.lease_seconds)
    runner = Runner(backends.store, backends.warehouse, chunk_bytes=settings.chunk_bytes)
    return Ingestor(
        pipelines,
        backends.store,
        ledger,
        runner,
        renew_every_seconds=settings.renew_every_seconds,
        max_units_in_flight=settings.max_units_in_flight,
    )


def load_config(settings: Settings) -> PipelineSet:
    return load_pipelines(settings.pipelines_file)
